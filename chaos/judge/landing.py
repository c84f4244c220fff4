"""Did the schedule's faults land? A run is evidence only of the faults it suffered.

Jepsen's rule: a run is *valid* only when the history proves it. A run whose scheduled
faults did not all land tested less than it claims, so it is *inconclusive*, never
valid. This module reads, from the history alone, every scheduled fault that did not
land and why (`FaultMiss`):

- `skipped`: the harness skipped it (no worker in that role, it had already left);
- `not-reached`: its logical trigger point was never reached in this run;
- `harness-error`: a fault decision or a refill failed (run-level, no fault id);
- `unconfirmed`: it fired, but neither its landing nor the scheduler's notice of the
  worker's departure was ever seen;
- `unaccounted`: the schedule has it, the history says nothing of it;
- `impossible`: its role cannot exist in this configuration (an input holder when the
  inputs are inline in the task graph). Counted, and shown, but not inconclusive:
  no run of that configuration could land it;
- `moot`: its trigger point was never reached (or, deferred because its victim was
  leaving, never reached again) because the task it watches had been reported failed
  (an earlier fault took it, loudly); or it is a Poisson arrival that fell after the
  run had ended, or when no worker was alive to take it (an arrival process owes the
  run no particular point, and a machine that is gone cannot be preempted). Counted,
  not inconclusive: the run still proves what became of every task.

And the converse, run-level (no fault id):

- `unexplained`: the scheduler removed a worker and no fault of the run explains it
  (each fault explains one removal of the worker it hit, the first after it fired).
  The run suffered more than its schedule says, so the model's expectations do not
  hold for it. (A LocalCluster closing a nanny mid-restart did this, until the local
  backend stopped it: docs/dask-upstream.md, 6.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

MissCause = Literal["skipped", "not-reached", "harness-error", "unconfirmed", "unaccounted",
                    "unexplained", "impossible", "moot"]
MISS_CAUSES: tuple[MissCause, ...] = ("skipped", "not-reached", "harness-error", "unconfirmed",
                                      "unaccounted", "unexplained", "impossible", "moot")
# Seconds a removal may be recorded before its fault's `fired_at` (two clocks of one host).
CLOCK_SLACK = 0.05
NOT_REACHED = "its trigger point was never reached"
# Roles and triggers that need a worker holding the step's input in memory.
_NEEDS_A_HOLDER = ("input-held", "replica-holder")


@dataclass(frozen=True)
class FaultMiss:
    """A scheduled fault that did not land, with why and the event that says so."""

    fault_id: str | None
    kind: str | None
    cause: MissCause
    detail: str
    seq: int

    @property
    def inconclusive(self) -> bool:
        """Whether it makes the run inconclusive (an impossible role or a moot trigger
        does not)."""
        return self.cause not in ("impossible", "moot")

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def fault_misses(history: Sequence[Mapping[str, Any]]) -> tuple[FaultMiss, ...]:
    """Every scheduled fault of the run that did not land, in history order."""
    start = history[0]
    inline = not bool((start.get("config") or {}).get("scatter", True))
    listed = (start.get("schedule") or {}).get("faults")
    # A schedule the harness did not write (a count, say) is not checked fault by fault.
    scheduled = {str(f.get("id", f"f{i}")): f for i, f in enumerate(listed)
                 if isinstance(f, Mapping)} if isinstance(listed, list) else {}
    seen: set[str] = set()
    failed = {(type(e["task_id"]), e["task_id"]) for e in history if e["type"] == "task-failed"}
    misses: list[FaultMiss] = []
    for event in history:
        kind = event.get("type")
        if kind == "fault":
            fault_id = str(event.get("fault_id"))
            seen.add(fault_id.split(".")[0])
            if event.get("landed_at") is None and event.get("noticed_at") is None:
                why = event.get("error") or "no landing and no notice was ever seen"
                misses.append(FaultMiss(fault_id, event.get("kind"), "unconfirmed", str(why),
                                        int(event["seq"])))
        elif kind == "fault-skipped":
            fault_id = str(event.get("fault_id"))
            seen.add(fault_id.split(".")[0])
            misses.append(FaultMiss(fault_id, event.get("kind"),
                                    _skip_cause(event, inline, failed),
                                    str(event.get("reason", "")), int(event["seq"])))
        elif kind == "harness-error":
            misses.append(FaultMiss(None, None, "harness-error",
                                    f"during {event.get('during')}: {event.get('error')}",
                                    int(event["seq"])))
    last = int(history[-1]["seq"])
    for fault_id, fault in scheduled.items():
        if fault_id not in seen and (fault.get("trigger") or {}).get("type") != "poisson":
            misses.append(FaultMiss(fault_id, fault.get("kind"), "unaccounted",
                                    "the history has neither a fault nor a fault-skipped "
                                    "event for it", last))
    return tuple(misses) + unexplained_departures(history)


def unexplained_departures(history: Sequence[Mapping[str, Any]]) -> tuple[FaultMiss, ...]:
    """Each removal of a worker of the run's fleet that no fault of the run explains. A
    fault explains one removal of the worker it hit, the first at or after it fired.
    The fleet: the workers at the run's start and those that joined during it (a spare
    the harness let go of between runs may still be leaving). Not checked in a run with
    a scheduler kill: every worker then leaves and joins a new scheduler."""
    faults = [e for e in history if e["type"] == "fault"]
    if any(e.get("kind") == "scheduler-kill" for e in faults):
        return ()
    unused = sorted((float(e.get("fired_at") or e["time"]), str(e.get("worker"))) for e in faults)
    fleet = {str(w.get("address")) for w in history[0].get("workers") or ()
             if isinstance(w, Mapping)}
    misses: list[FaultMiss] = []
    for event in history:
        if event["type"] == "worker-added":
            fleet.add(str(event.get("worker")))
        if event["type"] != "worker-removed" or str(event.get("worker")) not in fleet:
            continue
        worker, when = str(event.get("worker")), float(event["time"])
        cause = next((f for f in unused if f[1] == worker and f[0] <= when + CLOCK_SLACK), None)
        if cause is not None:
            unused.remove(cause)
            continue
        lost = len(event.get("lost_keys") or ())
        keys = "1 key" if lost == 1 else f"{lost} keys"
        misses.append(FaultMiss(None, None, "unexplained",
                                f"the scheduler removed {worker} (losing {keys}) with no fault "
                                "of the run to explain it", int(event["seq"])))
    return tuple(misses)


def _skip_cause(event: Mapping[str, Any], inline: bool,
                failed: set[tuple[type, Any]]) -> MissCause:
    cause = event.get("cause")
    trigger = event.get("trigger") or {}
    role = (event.get("target") or {}).get("role")
    if inline and (trigger.get("type") in _NEEDS_A_HOLDER or role in _NEEDS_A_HOLDER):
        return "impossible"
    # The task the fault waited for: named by the trigger, or (a fault deferred at an
    # n-th task's point) the task whose execution it was deferred at.
    watched = trigger.get("task", trigger.get("task_id"))
    moot = watched is not None and (type(watched), watched) in failed
    poisson = trigger.get("type") == "poisson"
    if cause == "not-reached" or NOT_REACHED in str(event.get("reason", "")):
        return "moot" if moot or poisson else "not-reached"
    if poisson and cause == "no-victim":
        return "moot"
    if cause == "deferred" and moot:
        return "moot"
    return "skipped"
