"""What a run hands back: `Output`s, delivered exactly once, and the `RunSummary`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resilience.tasks import TaskId


@dataclass(frozen=True)
class Output:
    """One final output of one task.

    index: one output position per protocol, so `(task_id, index)` names the output
        uniquely and deterministically (the k-th position is which of step k's
        outputs this one descends from).
    attempts: attempts taken by the most-retried step of this output's lineage:
        1 when nothing had to be redone.
    step_attempts: attempts taken by each step of the lineage.
    """

    task_id: TaskId
    index: tuple[int, ...]
    value: Any
    attempts: int
    step_attempts: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunSummary:
    """The end state of a run.

    outputs: what `distribute()` delivered (`generate()` hands outputs to you instead,
        and keeps none, so its summary's list is empty).
    failed: task_id -> reason, for tasks that could not be (fully) delivered.
    delivered: the number of outputs delivered.
    attempts: step attempts submitted, first attempts included.
    resubmissions: attempts beyond the first (lost inputs, lost workers, timeouts).
    duplicates_suppressed: results of an already finished step that arrived and were
        dropped, so that nothing is delivered twice.
    elapsed: wall-clock seconds of the run.
    in_flight: steps started but not finished (at the end: 0, unless the run stopped).
    previously_delivered: outputs an earlier session of a resumed run delivered (they
        are in the output folder, and not delivered again).
    """

    outputs: list[Output] = field(default_factory=list)
    failed: dict[TaskId, str] = field(default_factory=dict)
    delivered: int = 0
    attempts: int = 0
    resubmissions: int = 0
    duplicates_suppressed: int = 0
    elapsed: float = 0.0
    in_flight: int = 0
    previously_delivered: int = 0


class DeliveryLedger:
    """Remembers which `(task_id, index)` were delivered; a second claim is refused."""

    def __init__(self) -> None:
        self._delivered: set[tuple[TaskId, tuple[int, ...]]] = set()

    def claim(self, task_id: TaskId, index: tuple[int, ...]) -> bool:
        """True the first time an output is claimed, False ever after."""
        key = (task_id, index)
        if key in self._delivered:
            return False
        self._delivered.add(key)
        return True

    def __len__(self) -> int:
        return len(self._delivered)
