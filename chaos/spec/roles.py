"""Target roles: *which* worker a fault hits, chosen when it fires.

A role is a small frozen dataclass; `chaos.harness.coordinator` resolves it against the live
cluster at the moment the trigger fires. For a logical trigger, "the task" is the
probed task; for a time trigger it is the role's own `task` (or any running task when
None, picked with the schedule's seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from chaos.spec.tagged import from_tagged
from chaos.spec.triggers import TaskId


@dataclass(frozen=True)
class RunningWorker:
    """The worker running the task (the probed one, or `task` for a time trigger)."""

    role: ClassVar[str] = "running"
    task: TaskId | None = None

    def describe(self) -> str:
        return "the worker running " + (f"task {self.task!r}" if self.task is not None else "it")

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, **({"task": self.task} if self.task is not None else {})}


@dataclass(frozen=True)
class ReplicaHolder:
    """A worker holding the task's current step input (a scattered input or a replica).

    With `prefer_other`, a holder other than the worker running the task is chosen
    when there is one, so the fault takes a replica away without killing the task.
    """

    role: ClassVar[str] = "replica-holder"
    task: TaskId | None = None
    prefer_other: bool = True

    def describe(self) -> str:
        whose = f"task {self.task!r}'s" if self.task is not None else "its"
        other = " (not the one running it, if possible)" if self.prefer_other else ""
        return f"a worker holding {whose} input{other}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "prefer_other": self.prefer_other}
        if self.task is not None:
            data["task"] = self.task
        return data


@dataclass(frozen=True)
class RandomWorker:
    """A live worker picked at random: the same pick for the same schedule seed and salt."""

    role: ClassVar[str] = "random"
    salt: int = 0

    def describe(self) -> str:
        return f"a random worker (salt {self.salt})"

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "salt": self.salt}


Role = RunningWorker | ReplicaHolder | RandomWorker
ROLES = (RunningWorker, ReplicaHolder, RandomWorker)
_BY_NAME: dict[str, type] = {cls.role: cls for cls in ROLES}


def role_from_json(data: Any) -> Role:
    """The role a `to_json()` dict describes; ScheduleError naming the bad field."""
    role: Role = from_tagged(data, "role", _BY_NAME, "target")
    return role
