"""Resolving a fault's target role to one live worker, at the moment its trigger fires.

Policy only: it reads what the run has observed and the cluster's membership, and
returns a choice with the reason when there is no worker to hit. Random picks are
seeded by the schedule's seed and the fault's id, so a replay picks the same way from
the same workers; a lockstep replay keeps to the worker its original hit.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.harness.inflict import Victim
from chaos.harness.observations import RunObservations
from chaos.spec import Fault, InputHeld, RandomWorker, ReplicaHolder, RunningWorker

# Where input holders are looked up: (Dask key) -> sorted worker addresses.
FindHolders = Callable[[str], list[str]]


@dataclass(frozen=True)
class Choice:
    """The worker to hit, or None with the reason; `extra` goes into the fault event."""

    victim: Victim | None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    running_on: str | None = None  # the worker running the task, when known


def choose_victim(fault_id: str, fault: Fault, hit: dict[str, Any] | None, *, seed: int,
                  seen: RunObservations, live: dict[str, Victim],
                  find_holders: FindHolders, original: str | None = None) -> Choice:
    """The worker `fault` hits now. `hit` is the probe that fired it (None: a time trigger).

    `original`, in a lockstep replay: the worker in the place of the one the original
    hit (`Places.original_victim`). A random pick keeps to it while it is live: the
    draw is from the live workers, and a worker its nanny restarts rejoins within a few
    ms of a trigger, before it in one run and after it in the other (nightly seed 7070's
    s005: all 3 replays hit the rejoined worker, lost 4 outputs instead of 7). The other
    roles follow their task, wherever it runs."""
    role = fault.target
    running_on = _worker_of(hit, live) if hit else None
    key = seen.key_of(hit.get("execution")) if hit else None
    task = getattr(role, "task", None)
    if hit is None and task is not None:
        current = seen.running(task)
        if current is None:
            return Choice(None, f"task {task!r} was not running at that moment")
        running_on, key = current.worker, current.key

    extra: dict[str, Any] = {}
    if isinstance(fault.trigger, InputHeld) or isinstance(role, ReplicaHolder):
        held_by = find_holders(key) if key else []
        holders = [h for h in held_by if h in live]
        extra["holders"] = holders
        if not holders:
            # A holder the run's scheduler still lists is gone or going: an earlier fault
            # took it (two faults of one hit at a task's one holder), or it just left.
            why = (f"held only by {', '.join(held_by)}, taken down by an earlier fault or "
                   "gone" if held_by else "inline input, or lost")
            return Choice(None, f"no live worker held the task's input ({why})", extra)

    if isinstance(role, RunningWorker):
        if running_on is None:
            busy = [w for w in seen.busy_workers() if w in live]
            if not busy:
                return Choice(None, "no worker was running a task at that moment", extra)
            running_on = random.Random(f"{seed}:{fault_id}").choice(busy)
        address = running_on
    elif isinstance(role, ReplicaHolder):
        holders = extra["holders"]
        others = [h for h in holders if h != running_on]
        address = (others if role.prefer_other and others else holders)[0]
    else:
        assert isinstance(role, RandomWorker)
        if not live:
            return Choice(None, "no live worker", extra)
        address = (original if original in live else
                   random.Random(f"{seed}:{fault_id}:{role.salt}").choice(sorted(live)))

    victim = live.get(address) if address else None
    if victim is None:
        return Choice(None, f"worker {address} had already left", extra, running_on)
    return Choice(victim, None, extra, running_on)


def _worker_of(hit: dict[str, Any], live: dict[str, Victim]) -> str | None:
    """The worker a probe ran in; a probe in a worker's subprocess names its parent pid."""
    if hit.get("worker"):
        return str(hit["worker"])
    parent = hit.get("parent_pid")
    matches = [a for a, v in live.items() if parent is not None and v.pid == parent]
    return matches[0] if len(matches) == 1 else None
