"""Which faults' trigger hits came before a fault fired, in a lockstep replay's original.

A fault's trigger hit is the probe report (`probe` event) at which the harness decided
it: one execution at one point. The harness decides the hits one after the other, so a
hit can come in while an earlier one's faults are being enacted, and its own fault then
fires after them. The replay must keep that order of *hits*, not only of firings: in
nightly `--seed 1357`'s `s002` a nanny's close and a kill were decided at t2's result,
and t0's step 1 reached its trigger point (a quarter in) on the kill's victim between
the two. In every replay the kill came 5 ms after that step began, before its trigger
point, so the third fault never fired (0 of 3 exact).

    hits_first(history)   # fault id -> the faults whose hit it waits for
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaos.harness.death_race import fired_at

Hit = tuple[Any, Any, Any]  # (execution, point, fraction)


def hits_first(history: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """For each fault, the faults decided at another hit that came in before it fired,
    and that fired after it: a replay fires it only once those hits have come (their
    faults may still wait for their own turn). Faults of one hit are ordered there
    already (`replay_order._shared_turns`)."""
    hit_times: dict[Hit, float] = {}
    for event in history:
        if event["type"] == "probe":
            hit_times.setdefault(_hit_of(event), float(event["time"]))
    faults = {str(e["fault_id"]): e for e in history if e["type"] == "fault"}
    hits = {fault_id: _hit_of(e.get("trigger") or {}) for fault_id, e in faults.items()}
    first: dict[str, tuple[str, ...]] = {}
    for fault_id, event in faults.items():
        fired = fired_at(event)
        first[fault_id] = tuple(sorted(
            other for other, hit in hits.items()
            if hit != hits[fault_id] and hit in hit_times
            and hit_times[hit] < fired < fired_at(faults[other])))
    return {fault_id: waits for fault_id, waits in first.items() if waits}


def _hit_of(event: Mapping[str, Any]) -> Hit:
    return (event.get("execution"), event.get("point"), event.get("fraction"))
