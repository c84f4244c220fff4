"""The synthetic PyRosetta-shaped workload with step durations drawn from a distribution.

`VariableWorkload` is the chaos harness's `Workload` whose every step lasts a duration
drawn deterministically from (seed, task, step, lineage index), through the public
`Workload.protocols()`: a step runs the synthetic step of a workload whose
`step_seconds` is the drawn value. Outputs depend only on the seed, the fanout and the
payload size, so the oracle, and every verdict, are the synthetic workload's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from chaos import Workload
from experiments.durations import Duration, step_seconds
from experiments.study import Cell


@dataclass(frozen=True)
class VariableWorkload(Workload):
    """A `Workload` whose step durations follow `step_duration` (real seconds)."""

    step_duration: Duration | None = None

    def protocols(self) -> list[Any]:
        return [VariableStep(self, step) for step in range(self.n_steps)]

    def synthetic(self) -> Workload:
        """The plain workload with the same outputs (and so the same oracle)."""
        fields = {name: getattr(self, name) for name in
                  ("n_tasks", "n_steps", "fanout", "payload_bytes", "step_seconds", "busy",
                   "seed")}
        return Workload(**fields)

    def to_dict(self) -> dict[str, Any]:
        # The history's run-start keeps what rebuilds the oracle: the synthetic
        # workload's fields (step_seconds is the distribution's mean). The distribution
        # itself is in the study folder's study.json and in results.csv.
        return self.synthetic().to_dict()

    def duration_of(self, task_id: Any, step: int, index: tuple[int, ...]) -> float:
        assert self.step_duration is not None
        return step_seconds(self.step_duration, self.seed, task_id, step, index)


class VariableStep:
    """Step `step` of a VariableWorkload; pickles by reference (the package is installed)."""

    def __init__(self, workload: VariableWorkload, step: int) -> None:
        self.workload = workload
        self.step = step
        self.__name__ = f"variable_step_{step}"

    def __repr__(self) -> str:
        return f"VariableStep(step={self.step}, seed={self.workload.seed})"

    def __call__(self, payload: Any, **task: Any) -> Any:
        index = tuple(getattr(payload, "index", ()) or ()) if self.step > 0 else ()
        seconds = self.workload.duration_of(task["task_id"], self.step, index)
        timed = replace(self.workload.synthetic(), step_seconds=seconds)
        return timed.protocols()[self.step](payload, **task)


def task_ids(n_tasks: int) -> list[str]:
    """The workload's task ids ("t0".."t7", "t00".."t11"), as the simulator names them too."""
    return Workload(n_tasks=n_tasks, n_steps=1).task_ids()


def workload_for(cell: Cell, seed: int, busy: str = "sleep") -> VariableWorkload:
    """The workload of one real run of `cell` (seed shared by the cells it is paired with)."""
    return VariableWorkload(
        n_tasks=cell.tasks, n_steps=cell.steps, fanout=cell.fanout,
        payload_bytes=cell.payload_bytes, step_seconds=cell.step_duration.mean(),
        busy=busy, seed=seed, step_duration=cell.step_duration,  # type: ignore[arg-type]
    )
