"""The end of a run's records: why a fault never fired (the trigger, reason and cause of
the `fault-skipped` event the coordinator writes for it), and why an execution never
reported an outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.spec import AtTime, Fault, Poisson, TaskId


@dataclass(frozen=True)
class Deferral:
    """A logical fault re-armed because its role had no worker at its trigger point."""

    count: int  # how often
    reason: str  # the last time's
    task: Any  # the task it waits for


# (trigger, reason, cause) of a `fault-skipped` event
Why = tuple[dict[str, Any], str, str]


def never_fired_firings(
    faults: Mapping[str, Fault], timed: Sequence[tuple[float, str, str]], spent: set[str], *,
    original: Mapping[str, Mapping[str, Any]], deferrals: Mapping[str, Deferral],
    nth_task: Callable[[Fault], TaskId | None],
) -> Iterator[tuple[str, Fault, Why]]:
    """Each fault, and each Poisson firing, of a schedule that the run did not spend
    (`spent`: fired or skipped already), with why. `timed`: (offset, firing id, fault id)
    of its timed firings; `original`: a lockstep replay's original's skips by fault id."""
    for fault_id, fault in faults.items():
        if not isinstance(fault.trigger, Poisson) and fault_id not in spent:
            yield fault_id, fault, never_fired(
                fault, original=original.get(fault_id), deferred=deferrals.get(fault_id),
                nth_task=nth_task(fault))
    for _, firing_id, fault_id in timed:
        if firing_id != fault_id and firing_id not in spent:
            fault = faults[fault_id]
            yield firing_id, fault, (fault.trigger.to_json(),
                                     "the run ended before this Poisson firing", "not-reached")


def unfinished_reason(worker: str, faulted: Mapping[str, str]) -> str:
    """Why an execution on `worker` never reported an outcome; `faulted`: the faults fired
    by their worker, as "f1 (sigkill)"."""
    fault = faulted.get(worker)
    return (f"worker {worker} got fault {fault}" if fault
            else "no outcome was reported before the run ended")


def never_fired(fault: Fault, *, original: Mapping[str, Any] | None,
                deferred: Deferral | None,
                nth_task: TaskId | None) -> Why:
    """`original`: the `fault-skipped` event of the run a lockstep replay left this fault
    unarmed for; `deferred`: its deferrals, if its role ever had no worker; `nth_task`:
    the task that was its trigger's n-th to start."""
    if original is not None:
        return (dict(original.get("trigger") or fault.trigger.to_json()),
                f"its original never fired it ({original.get('reason')}): left unarmed in "
                "this lockstep replay", str(original.get("cause", "not-reached")))
    if deferred is not None:
        return ({**fault.trigger.to_json(), "task_id": deferred.task},
                f"each of the {deferred.count} time(s) its trigger point was reached, its "
                f"role had no worker: {deferred.reason}", "deferred")
    trigger = fault.trigger.to_json()
    if getattr(fault.trigger, "nth", None) is not None:
        # Which task was the n-th to start, so a reader can tell a point never reached
        # from one whose task had failed before it.
        trigger["task_id"] = nth_task
    reason = (f"the run ended before t={fault.trigger.seconds:g} s"
              if isinstance(fault.trigger, AtTime)
              else "its trigger point was never reached in this run")
    return trigger, reason, "not-reached"
