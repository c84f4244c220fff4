"""Where the client's scatters went in the original, and the kills that waited for them.

A naive loop (`dask-raw`, `prc630`) scatters each next input from the client, and the
scheduler deals the inputs round robin over the workers it counts as running. A nanny's
close takes its victim out of that count as it begins, some milliseconds before the
scheduler removes it, so whether an input goes to the victim (and dies with it) is a
race between the client's scatter and the close. Left to it, replays ran it again and
fell the other way (nightly --seed 5757's `s018`: t7's input went to a survivor in the
original, to the victim in 3 of 3 replays, which lost one output more).

So the scheduler's membership plugin says where each scatter went (`scatter-placed`),
and a lockstep replay keeps to it:

- each input goes to the worker in the place of the one its original went to
  (`Lockstep.where`; the first workers by address, as for victims);
- a fault lands only once the client has made the scatters that its original put on
  the victim before the scheduler noticed it gone (`placed_on_victims`), which it could
  only do while the victim was still dealt to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaos.harness.death_race import Step, fired_at, numbered

Placement = tuple[Step, int]  # a step's input, with its ordinal among that step's scatters


def scatters_placed(history: Sequence[Mapping[str, Any]]) -> list[tuple[Placement, str, float]]:
    """Each scatter of the client's that reached a worker: which step's input it was
    (its `scatter` event's key), the worker, and when the scheduler placed it."""
    scattered: dict[str, Placement] = {str(event["key"]): (step, nth)
                                       for event, step, nth in numbered(history, "scatter")
                                       if event.get("key")}
    placed = []
    for event in history:
        if event["type"] == "scatter-placed":
            for key, worker in zip(event.get("keys") or (), event.get("workers") or (),
                                   strict=False):
                if key in scattered and worker:
                    placed.append((scattered[key], str(worker), float(event["time"])))
    return placed


Placed = Sequence[tuple[Placement, str, float]]  # what `scatters_placed` reads


def placements(placed: Placed, first: Sequence[str]) -> dict[Placement, int]:
    """Where each input went (`placed`), by place among the first workers (by address)."""
    return {placement: first.index(worker) for placement, worker, _ in placed if worker in first}


def placed_on_victims(history: Sequence[Mapping[str, Any]], placed: Placed
                      ) -> dict[str, tuple[Placement, ...]]:
    """By fault id: the inputs the client put on the fault's victim (`placed`) before the
    scheduler noticed it gone (a worker at its address later, a restart or a refill, is
    another)."""
    waits: dict[str, tuple[Placement, ...]] = {}
    for fault in history:
        if fault["type"] != "fault" or not fault.get("worker"):
            continue
        gone = float(fault.get("noticed_at") or fault.get("landed_at") or fired_at(fault))
        on_victim = tuple(p for p, worker, at in placed if worker == fault["worker"] and at <= gone)
        if on_victim:
            waits[str(fault["fault_id"])] = on_victim
    return waits
