"""Why a fault never fired: the trigger, reason and cause of the `fault-skipped` event
the coordinator writes for it when the run ends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaos.spec import AtTime, Fault, TaskId


@dataclass(frozen=True)
class Deferral:
    """A logical fault re-armed because its role had no worker at its trigger point."""

    count: int  # how often
    reason: str  # the last time's
    task: Any  # the task it waits for


def never_fired(fault: Fault, *, original: Mapping[str, Any] | None,
                deferred: Deferral | None,
                nth_task: TaskId | None) -> tuple[dict[str, Any], str, str]:
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
