"""`FaultSchedule`: a list of faults (trigger, target role, kind) as plain data.

A schedule round-trips through JSON, prints readably, and can be generated from a
seed. Fault ids are positional (`f0`, `f1`, ...), so the same file always names the
same faults; a Poisson trigger's firings are `f<i>.<n>`.

    >>> schedule = FaultSchedule((Fault("sigkill", AtStep(step=1, fraction=0.5, task="t00")),))
    >>> FaultSchedule.from_json(schedule.to_json()) == schedule
    True
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chaos.errors import ScheduleError
from chaos.spec.faults import DEFAULT_KINDS, DEFAULT_NOTICE, FaultKind, check_kind, current_kind
from chaos.spec.roles import RandomWorker, ReplicaHolder, Role, RunningWorker, role_from_json
from chaos.spec.triggers import (
    AtStep,
    InputHeld,
    ResultReady,
    TaskId,
    Trigger,
    is_logical,
    trigger_from_json,
)

# Version 2 renamed the kind `sigterm` to `nanny-close` and added `preempt` (with its
# `notice`) and `scheduler-kill`; version 1 files still read (chaos.spec.faults).
SCHEDULE_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Fault:
    """One fault: `kind` inflicted on the worker `target` names, when `trigger` fires.

    `freeze_for` is for `freeze` only: seconds until SIGCONT, or None for never (the
    worker then stays stopped until the run ends, and the scheduler sees it only
    through `distributed.scheduler.worker-ttl`).

    `notice` is for `preempt` only: seconds from the SIGTERM to the SIGKILL (default
    `DEFAULT_NOTICE`), as a cloud's or a batch system's preemption notice.
    """

    kind: FaultKind
    trigger: Trigger
    target: Role = field(default_factory=RunningWorker)
    freeze_for: float | None = None
    notice: float | None = None

    def __post_init__(self) -> None:
        try:
            check_kind(self.kind)
        except ValueError as error:
            raise ScheduleError(str(error)) from None
        self._check_notice()
        if self.freeze_for is not None:
            if self.kind != "freeze":
                raise ScheduleError(
                    f"freeze_for={self.freeze_for!r} on a {self.kind!r} fault: only a freeze "
                    "has a duration; drop freeze_for or use kind='freeze'."
                )
            if not isinstance(self.freeze_for, (int, float)) or not (
                math.isfinite(self.freeze_for) and self.freeze_for > 0
            ):
                raise ScheduleError(
                    f"freeze_for={self.freeze_for!r}: a freeze lasts > 0 s, or None for never."
                )
        if is_logical(self.trigger) and getattr(self.target, "task", None) is not None:
            raise ScheduleError(
                f"target {self.target.to_json()} names a task, but a logical trigger already "
                "watches one; leave the role's task unset (it means the probed task)."
            )

    def _check_notice(self) -> None:
        if self.kind != "preempt":
            if self.notice is not None:
                raise ScheduleError(
                    f"notice={self.notice!r} on a {self.kind!r} fault: only a preemption has "
                    "a notice; drop notice or use kind='preempt'."
                )
            return
        if self.notice is None:
            object.__setattr__(self, "notice", DEFAULT_NOTICE)
        elif (isinstance(self.notice, bool) or not isinstance(self.notice, (int, float))
              or not (math.isfinite(self.notice) and self.notice >= 0)):
            raise ScheduleError(
                f"notice={self.notice!r}: a preemption's notice is a number of seconds >= 0 "
                "(0 is a SIGTERM straight followed by a SIGKILL)."
            )

    def describe(self) -> str:
        what: str = self.kind
        if self.kind == "freeze":
            what = "freeze forever" if self.freeze_for is None else f"freeze {self.freeze_for:g}s"
        elif self.kind == "preempt":
            what = f"preempt ({self.notice:g}s notice)"
        elif self.kind == "scheduler-kill":
            return f"kill the scheduler, {self.trigger.describe()}"
        return f"{what} {self.target.describe()}, {self.trigger.describe()}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "trigger": self.trigger.to_json(),
            "target": self.target.to_json(),
        }
        if self.kind == "freeze":
            data["freeze_for"] = self.freeze_for
        if self.kind == "preempt":
            data["notice"] = self.notice
        return data

    @classmethod
    def from_json(cls, data: Any, version: int = SCHEDULE_VERSION) -> Fault:
        if not isinstance(data, dict) or not {"kind", "trigger"} <= set(data):
            raise ScheduleError(
                f"fault {data!r} must be a JSON object with \"kind\", \"trigger\" and "
                "optionally \"target\", \"freeze_for\" and \"notice\"."
            )
        unknown = set(data) - {"id", "kind", "trigger", "target", "freeze_for", "notice"}
        if unknown:
            raise ScheduleError(f"fault {data!r} has unknown field(s) {sorted(unknown)}.")
        return cls(
            kind=current_kind(data["kind"], version),
            trigger=trigger_from_json(data["trigger"]),
            target=role_from_json(data.get("target", {"role": "running"})),
            freeze_for=data.get("freeze_for"),
            notice=data.get("notice"),
        )


@dataclass(frozen=True)
class FaultSchedule:
    """The faults of one run, in order, plus the seed that random roles draw from."""

    faults: tuple[Fault, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", tuple(self.faults))
        for fault in self.faults:
            if not isinstance(fault, Fault):
                raise ScheduleError(
                    f"{fault!r} is not a chaos.Fault; build faults with Fault(kind, trigger)."
                )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ScheduleError(f"seed={self.seed!r}: a schedule's seed is an int.")

    def __len__(self) -> int:
        return len(self.faults)

    def items(self) -> list[tuple[str, Fault]]:
        """(fault_id, fault) pairs, ids positional: f0, f1, ..."""
        return [(f"f{i}", fault) for i, fault in enumerate(self.faults)]

    def pinned(self, watched: Mapping[str, TaskId]) -> FaultSchedule:
        """This schedule with each `nth` trigger whose fault id is in `watched` turned into
        a trigger on that task: a replay then strikes the task the original run's "n-th
        task to start" turned out to be, not whichever starts n-th this time."""
        faults = []
        for fault_id, fault in self.items():
            task = watched.get(fault_id)
            trigger: Any = fault.trigger  # a logical trigger: the ones with `nth` have `task`
            if task is not None and getattr(trigger, "nth", None) is not None:
                fault = replace(fault, trigger=replace(trigger, task=task, nth=None))
            faults.append(fault)
        return FaultSchedule(tuple(faults), seed=self.seed)

    def __str__(self) -> str:
        if not self.faults:
            return f"FaultSchedule(seed={self.seed}): no faults"
        lines = [f"FaultSchedule(seed={self.seed}): {len(self.faults)} fault(s)"]
        lines += [f"  {fault_id}: {fault.describe()}" for fault_id, fault in self.items()]
        return "\n".join(lines)

    # ----------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SCHEDULE_VERSION,
            "seed": self.seed,
            "faults": [{"id": fid, **fault.to_json()} for fid, fault in self.items()],
        }

    @classmethod
    def from_dict(cls, data: Any) -> FaultSchedule:
        if not isinstance(data, dict) or not isinstance(data.get("faults"), list):
            raise ScheduleError(
                "a schedule is a JSON object with a \"faults\" list (and \"seed\", "
                f"\"version\"); got {str(data)[:80]!r}."
            )
        version = data.get("version", SCHEDULE_VERSION)
        if version not in READABLE_VERSIONS:
            raise ScheduleError(
                f"schedule version {version!r} is not one of {READABLE_VERSIONS}, the versions "
                "this harness reads; regenerate the schedule with this version of chaos."
            )
        return cls(tuple(Fault.from_json(f, version) for f in data["faults"]),
                   seed=data.get("seed", 0))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> FaultSchedule:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ScheduleError(f"a schedule must be JSON; this is not ({error}).") from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        target = Path(path)
        target.write_text(self.to_json() + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaultSchedule:
        source = Path(path)
        if not source.is_file():
            raise ScheduleError(
                f"no schedule at {source}; pass the schedule.json that `python -m chaos run "
                "--out DIR` wrote (DIR/schedule.json)."
            )
        return cls.from_json(source.read_text(encoding="utf-8"))

    # ----------------------------------------------------------------- generation

    @classmethod
    def generate(
        cls,
        seed: int,
        n_faults: int,
        *,
        task_ids: Sequence[TaskId],
        n_steps: int,
        kinds: Sequence[FaultKind] = DEFAULT_KINDS,
        freeze_for: Sequence[float] = (0.5, 1.0),
    ) -> FaultSchedule:
        """A schedule of `n_faults` logical faults, the same for the same arguments.

        Faults are spread over the workload's tasks and steps (`task_ids`, `n_steps`).
        Freezes always resume (after one of `freeze_for` seconds): a freeze that never
        resumes hangs a run until worker-ttl, so ask for it explicitly.
        """
        if n_faults < 0:
            raise ScheduleError(f"n_faults={n_faults}: a schedule has 0 or more faults.")
        if not task_ids or n_steps < 1:
            raise ScheduleError(
                f"task_ids={list(task_ids)!r}, n_steps={n_steps}: generating needs at least "
                "one task and one step; pass the workload's task ids and step count."
            )
        for kind in kinds:
            check_kind(kind)
        rng = random.Random(f"chaos-schedule:{seed}")
        faults = [_random_fault(rng, list(task_ids), n_steps, list(kinds), list(freeze_for))
                  for _ in range(n_faults)]
        return cls(tuple(faults), seed=seed)


def _random_fault(
    rng: random.Random, task_ids: list[TaskId], n_steps: int, kinds: list[FaultKind],
    freeze_for: list[float],
) -> Fault:
    kind = rng.choice(kinds)
    step = rng.randrange(n_steps)
    watched: dict[str, Any] = (
        {"task": rng.choice(task_ids)} if rng.random() < 0.5
        else {"nth": rng.randint(1, len(task_ids))}
    )
    shape = rng.choices(["at-step", "result-ready", "input-held"], weights=[6, 2, 2])[0]
    trigger: Trigger
    target: Role = RunningWorker()
    if shape == "at-step":
        trigger = AtStep(step=step, fraction=rng.choice([0.0, 0.25, 0.5, 0.75]), **watched)
    elif shape == "result-ready":
        trigger = ResultReady(step=step, **watched)
    else:
        trigger = InputHeld(step=step, **watched)
        target = ReplicaHolder()
    if rng.random() < 0.15:
        target = RandomWorker(salt=rng.randrange(1000))
    return Fault(kind, trigger, target, rng.choice(freeze_for) if kind == "freeze" else None,
                 DEFAULT_NOTICE if kind == "preempt" else None)
