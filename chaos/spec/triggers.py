"""Triggers: *when* a fault fires. Small frozen dataclasses, JSON round-trippable.

Logical triggers fire at a probe point of a protocol chain (see `chaos.probes.worker`): the
probed task is held there until the fault has landed, so the fault happens exactly
at that point. Time triggers fire on the harness's clock, for studies.

A logical trigger watches one task: `task` names it by task_id, or `nth` picks the
n-th task to start (1 = the first task whose first step began), resolved at run time.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from chaos.errors import ScheduleError
from chaos.spec.tagged import from_tagged

TaskId = str | int
# An output of a chain: its task and its lineage (one output position per step).
OutputKey = tuple[TaskId, tuple[int, ...]]
ProbePoint = Literal["invoke", "progress", "result"]


@dataclass(frozen=True)
class _Watched:
    """The task a logical trigger watches: exactly one of `task` and `nth`."""

    step: int
    task: TaskId | None = None
    nth: int | None = None

    def _check_watched(self) -> None:
        if not isinstance(self.step, int) or isinstance(self.step, bool) or self.step < 0:
            raise ScheduleError(
                f"step={self.step!r}: a trigger's step must be an int >= 0 (0 = first protocol)."
            )
        if (self.task is None) == (self.nth is None):
            raise ScheduleError(
                f"task={self.task!r}, nth={self.nth!r}: a logical trigger watches exactly one "
                "task; give `task` (a task_id) or `nth` (the n-th task to start), not both."
            )
        if self.nth is not None and (
            not isinstance(self.nth, int) or isinstance(self.nth, bool) or self.nth < 1
        ):
            raise ScheduleError(
                f"nth={self.nth!r}: the n-th task to start counts from 1 (1 = the first)."
            )
        if self.task is not None and not isinstance(self.task, (str, int)):
            raise ScheduleError(f"task={self.task!r}: a task_id is a str or an int.")

    def watched(self) -> str:
        if self.task is not None:
            return f"task {self.task!r}"
        return f"the {_ordinal(self.nth or 0)} task to start"

    def _watched_json(self) -> dict[str, Any]:
        return {"task": self.task} if self.task is not None else {"nth": self.nth}


@dataclass(frozen=True)
class AtStep(_Watched):
    """The watched task reaches step `step` at progress `fraction` (0 = invoked)."""

    type: ClassVar[str] = "at-step"
    fraction: float = 0.0

    def __post_init__(self) -> None:
        self._check_watched()
        if not isinstance(self.fraction, (int, float)) or not 0.0 <= self.fraction < 1.0:
            raise ScheduleError(
                f"fraction={self.fraction!r}: progress is in [0, 1); use 0 for the moment the "
                "step is invoked, or ResultReady for a step whose result is computed."
            )

    @property
    def point(self) -> ProbePoint:
        return "invoke" if self.fraction == 0.0 else "progress"

    def describe(self) -> str:
        return f"when {self.watched()} reaches step {self.step} at {self.fraction:.0%}"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "step": self.step, "fraction": float(self.fraction),
                **self._watched_json()}


@dataclass(frozen=True)
class ResultReady(_Watched):
    """The result of step `step` of the watched task is computed, not yet handed to Dask."""

    type: ClassVar[str] = "result-ready"

    def __post_init__(self) -> None:
        self._check_watched()

    point: ClassVar[ProbePoint] = "result"
    fraction: ClassVar[float] = 1.0

    def describe(self) -> str:
        return f"when the result of step {self.step} of {self.watched()} is computed, not delivered"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "step": self.step, **self._watched_json()}


@dataclass(frozen=True)
class InputHeld(_Watched):
    """When the watched task invokes step `step`, a worker holds that step's input.

    It fires at the invoke probe only if some worker holds the input in memory (a
    scattered input, or a replica of it); an input passed inline in the task graph has
    no holder, so the fault is skipped, and the history says why. Pair it with the
    ReplicaHolder role to take a replica away while the task runs elsewhere.
    """

    type: ClassVar[str] = "input-held"
    point: ClassVar[ProbePoint] = "invoke"
    fraction: ClassVar[float] = 0.0

    def __post_init__(self) -> None:
        self._check_watched()

    def describe(self) -> str:
        return f"when {self.watched()} invokes step {self.step} and a worker holds its input"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "step": self.step, **self._watched_json()}


@dataclass(frozen=True)
class AtTime:
    """`seconds` after the run started, on the harness's clock."""

    type: ClassVar[str] = "at-time"
    seconds: float

    def __post_init__(self) -> None:
        if not isinstance(self.seconds, (int, float)) or not math.isfinite(self.seconds) or (
            self.seconds < 0
        ):
            raise ScheduleError(f"seconds={self.seconds!r}: a time trigger fires at t >= 0 s.")

    def times(self) -> list[float]:
        return [float(self.seconds)]

    def describe(self) -> str:
        return f"at t={self.seconds:g} s"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "seconds": float(self.seconds)}


@dataclass(frozen=True)
class Poisson:
    """A Poisson process of mean time between failures `mtbf` seconds, seeded.

    It fires at most `limit` times; firing i of fault `f1` is recorded as `f1.i`.
    """

    type: ClassVar[str] = "poisson"
    mtbf: float
    seed: int = 0
    limit: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.mtbf, (int, float)) or not math.isfinite(self.mtbf) or (
            self.mtbf <= 0
        ):
            raise ScheduleError(f"mtbf={self.mtbf!r}: the mean time between failures is > 0 s.")
        if not isinstance(self.limit, int) or self.limit < 1:
            raise ScheduleError(f"limit={self.limit!r}: a Poisson trigger fires 1 or more times.")

    def times(self) -> list[float]:
        """The firing times, in seconds after the run start: the same for the same seed."""
        rng = random.Random(f"poisson:{self.seed}:{self.mtbf}")
        moments, now = [], 0.0
        for _ in range(self.limit):
            now += rng.expovariate(1.0 / self.mtbf)
            moments.append(now)
        return moments

    def describe(self) -> str:
        return (f"as a Poisson process (MTBF {self.mtbf:g} s, seed {self.seed}, "
                f"<= {self.limit} times)")

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "mtbf": float(self.mtbf), "seed": self.seed, "limit": self.limit}


LogicalTrigger = AtStep | ResultReady | InputHeld
TimeTrigger = AtTime | Poisson
Trigger = AtStep | ResultReady | InputHeld | AtTime | Poisson
LOGICAL_TRIGGERS = (AtStep, ResultReady, InputHeld)
TIME_TRIGGERS = (AtTime, Poisson)
_BY_TYPE: dict[str, type] = {cls.type: cls for cls in (*LOGICAL_TRIGGERS, *TIME_TRIGGERS)}


def trigger_from_json(data: Any) -> Trigger:
    """The trigger a `to_json()` dict describes; ScheduleError naming the bad field."""
    trigger: Trigger = from_tagged(data, "type", _BY_TYPE, "trigger")
    return trigger


def is_logical(trigger: Trigger) -> bool:
    return isinstance(trigger, LOGICAL_TRIGGERS)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
