"""Fault schedules as plain data: kinds, triggers, target roles, schedules. No Dask.

    schedule = FaultSchedule((Fault("sigkill", AtStep(step=1, fraction=0.5, task="t3")),))
    FaultSchedule.from_json(schedule.to_json()) == schedule

A `Fault` is a kind (what happens to the worker), a trigger (when: a logical point of
the protocol chain, or a time) and a role (which worker, resolved when it fires). The
Hypothesis strategies (`chaos.spec.strategies`: `fault_schedules`, `draw_schedules`)
need the `chaos` extra and are imported from there.
"""

from chaos.spec.faults import (
    ABRUPT_KINDS,
    DEFAULT_KINDS,
    DEFAULT_NOTICE,
    DESCRIPTIONS,
    FAULT_KINDS,
    GRACEFUL_KINDS,
    LEGACY_KINDS,
    SCHEDULER_KINDS,
    FaultKind,
    check_kind,
    current_kind,
)
from chaos.spec.roles import ROLES, RandomWorker, ReplicaHolder, Role, RunningWorker, role_from_json
from chaos.spec.schedule import SCHEDULE_VERSION, Fault, FaultSchedule
from chaos.spec.triggers import (
    LOGICAL_TRIGGERS,
    AtStep,
    AtTime,
    InputHeld,
    LogicalTrigger,
    OutputKey,
    Poisson,
    ProbePoint,
    ResultReady,
    TaskId,
    Trigger,
    is_logical,
    trigger_from_json,
)

__all__ = [
    "ABRUPT_KINDS",
    "DEFAULT_KINDS",
    "DEFAULT_NOTICE",
    "DESCRIPTIONS",
    "FAULT_KINDS",
    "GRACEFUL_KINDS",
    "LEGACY_KINDS",
    "LOGICAL_TRIGGERS",
    "ROLES",
    "SCHEDULER_KINDS",
    "SCHEDULE_VERSION",
    "AtStep",
    "AtTime",
    "Fault",
    "FaultKind",
    "FaultSchedule",
    "InputHeld",
    "LogicalTrigger",
    "OutputKey",
    "Poisson",
    "ProbePoint",
    "RandomWorker",
    "ReplicaHolder",
    "ResultReady",
    "Role",
    "RunningWorker",
    "TaskId",
    "Trigger",
    "check_kind",
    "current_kind",
    "is_logical",
    "role_from_json",
    "trigger_from_json",
]
