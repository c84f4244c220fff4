"""What a run hands back: each `Output`, delivered exactly once, and the `RunSummary`.

Plain data with no imports of the library's own, so every module can name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

# A task's id: the "task_id" of its dict, or its position in the task list.
TaskId = str | int


def task_id_text(task_id: TaskId) -> str:
    """A task id as text, injective across types: int 1 is `1`, str "1" is `"1"` (a JSON
    string, ASCII only). Names built from ids (Dask keys) must never merge two tasks."""
    if isinstance(task_id, str):
        return encode_basestring_ascii(task_id)
    return str(int(task_id))


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
