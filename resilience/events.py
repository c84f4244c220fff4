"""What a run reports to an observer, as it happens.

`ResilientCluster(on_event=callback)` calls `callback(event)` on the thread that
drives the run, once per event, in order. Observers (the chaos harness, a progress
bar, a log) read these; the library never depends on what they do with them.
An observer that raises is logged and ignored: observing must not change the run.

`index` is always the step's *input* lineage: one output position per earlier step,
so step 0 has `()` and step 1 of the third decoy of step 0 has `(2,)`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from resilience.outputs import TaskId

SubmitReason = Literal["new", "lost-input", "killed-worker", "step-timeout", "resumed"]
FailureCause = Literal[
    "lost-input", "killed-worker", "protocol-error", "step-timeout", "no-workers"
]


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class StepEvent:
    """What every event about one attempt of one task step carries."""

    task_id: TaskId
    index: tuple[int, ...]
    step: int
    attempt: int
    key: str
    time: float = field(default_factory=_now, kw_only=True)


@dataclass(frozen=True)
class StepSubmitted(StepEvent):
    """One attempt of one task step was handed to Dask."""

    reason: SubmitReason


@dataclass(frozen=True)
class StepFailed(StepEvent):
    """An attempt ended without a usable result, as the client saw it."""

    cause: FailureCause
    error: str


@dataclass(frozen=True)
class StepCompleted(StepEvent):
    """An attempt's result was accepted: handed to the next step or delivered."""

    n_outputs: int


@dataclass(frozen=True)
class DuplicateSuppressed(StepEvent):
    """A second attempt of an already completed step finished; its result was dropped."""


@dataclass(frozen=True)
class TaskFailed:
    """The task will not deliver (all of) its outputs; `reason` says why and what to change."""

    task_id: TaskId
    reason: str
    time: float = field(default_factory=_now, kw_only=True)


@dataclass(frozen=True)
class WaitingForWorkers:
    """The cluster has no worker, and `unfinished` steps wait for one. The wait ends when
    a worker joins (`WorkersReturned`) or after `timeout` seconds (worker_wait_timeout),
    when every unfinished task is reported failed."""

    unfinished: int
    timeout: float
    time: float = field(default_factory=_now, kw_only=True)


@dataclass(frozen=True)
class WorkersReturned:
    """Workers joined after a `WaitingForWorkers`; the run goes on."""

    workers: int
    waited: float
    time: float = field(default_factory=_now, kw_only=True)


@dataclass(frozen=True)
class ResultsDelayed:
    """Finished attempts whose results have taken over 2 s to fetch (their holder died a
    moment before the scheduler noticed, froze, or the link is slow). The run goes on
    meanwhile; each of these results is then fetched afresh on its own, so that one
    result cannot hold the others of its batch hostage."""

    keys: tuple[str, ...]
    seconds: float
    time: float = field(default_factory=_now, kw_only=True)


RunEvent = (StepSubmitted | StepFailed | StepCompleted | DuplicateSuppressed | TaskFailed
            | WaitingForWorkers | WorkersReturned | ResultsDelayed)
