"""Jobs and their attempts: what the run loop is waiting for.

A *job* is one task step on one input. It is the unit of submission, resubmission
and deduplication: its first accepted result wins, and a later result of another
attempt of it is dropped. `JobBook` holds the unfinished jobs, the live attempts by
Dask key, and the jobs waiting to be (re)submitted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from distributed import Future

from resilience.events import SubmitReason
from resilience.outputs import TaskId, task_id_text
from resilience.registry import RecordKey, StepRecord
from resilience.tasks import TaskSpec

Submission = tuple["Job", SubmitReason]
DROPPED = object()  # a submitted job's payload: the registry (if any) keeps it


class Job:
    """One task step on one input, with its live attempts."""

    __slots__ = ("attempts", "done", "index", "inputs", "lineage_attempts", "live", "payload",
                 "resumed", "started_at", "step", "task")

    def __init__(self, task: TaskSpec, index: tuple[int, ...], step: int, payload: Any,
                 lineage_attempts: tuple[int, ...], started_at: float) -> None:
        self.task = task
        self.index = index
        self.step = step
        self.payload = payload
        self.lineage_attempts = lineage_attempts
        self.started_at = started_at  # when its task was admitted, for the scorefile
        self.attempts = 0
        self.live: dict[str, Future[Any]] = {}
        self.inputs: dict[str, Any] = {}  # each live attempt's placed input, kept wanted
        self.done = False

    @property
    def holds_payload(self) -> bool:
        """The client still holds this step's input, so it can be resubmitted from it."""
        return self.payload is not DROPPED

    @property
    def key(self) -> RecordKey:
        return (self.task.task_id, self.index)

    def record(self, retries: int) -> StepRecord:
        """The registry's copy of this job, counting the submission about to happen."""
        return StepRecord(task_id=self.task.task_id, index=self.index, step=self.step,
                          payload=self.payload, kwargs=self.task.kwargs, attempts=1,
                          options={"retries": retries}, lineage_attempts=self.lineage_attempts,
                          started_at=self.started_at)

    @classmethod
    def resume(cls, record: StepRecord) -> Job:
        """A step an earlier session left unfinished. Its interrupted attempt is not
        charged: the client died, not the step."""
        task = TaskSpec(record.task_id, record.kwargs, position=-1)
        job = cls(task, record.index, record.step, record.payload, record.lineage_attempts,
                  record.started_at)
        job.attempts = max(record.attempts - 1, 0)
        return job


class JobBook:
    """The run's unfinished jobs, their live attempts, and the submissions to make.

    `on_untrack(key)` is told when an attempt stops being tracked (the step watch
    forgets its start time then).
    """

    def __init__(self, on_untrack: Callable[[str], None] | None = None) -> None:
        self.jobs: dict[RecordKey, Job] = {}  # unfinished jobs
        self.by_key: dict[str, Job] = {}  # live attempt key -> its job
        self.submitted_at: dict[str, float] = {}  # live attempt key -> when submitted
        self.given_up: set[str] = set()  # attempts past step_timeout, already handled
        self.pending: list[Submission] = []
        self._on_untrack = on_untrack
        self._open: Counter[TaskId] = Counter()  # unfinished jobs per task
        self._maybe_done: set[TaskId] = set()  # tasks whose count fell to 0

    @property
    def waiting(self) -> bool:
        """Whether any attempt is live or any submission is still to be made."""
        return bool(self.by_key or self.pending)

    def add(self, jobs: list[Job], reason: SubmitReason) -> None:
        """New unfinished jobs, to be submitted."""
        self.jobs.update((job.key, job) for job in jobs)
        self._open.update(job.task.task_id for job in jobs)
        self.pending.extend((job, reason) for job in jobs)

    def take_pending(self) -> list[Submission]:
        pending, self.pending = self.pending, []
        return [(job, reason) for job, reason in pending if not job.done]

    def track(self, job: Job, key: str, future: Future[Any], placed: Any,
              keep_payload: bool = False) -> None:
        """A submitted attempt of `job`: its future, and its placed input kept wanted.

        The client lets go of the payload (the registry, if any, keeps it), unless
        `keep_payload`: without a registry, an input placed with fewer copies than asked
        could be lost to a single fault, which its replicas were meant to survive, so
        until the step is done the client keeps its own copy to resubmit it from."""
        job.attempts += 1
        if not keep_payload:
            job.payload = DROPPED
        job.live[key] = future
        job.inputs[key] = placed
        self.by_key[key] = job
        self.submitted_at[key] = time.monotonic()

    def finish(self, job: Job) -> list[Future[Any]]:
        """`job` is done (accepted or failed): drop it; returns its other live attempts,
        no longer tracked, for the caller to cancel."""
        if not job.done:
            task_id = job.task.task_id
            self._open[task_id] -= 1
            if self._open[task_id] <= 0:
                del self._open[task_id]
                self._maybe_done.add(task_id)
        job.done = True
        self.jobs.pop(job.key, None)
        losers = list(job.live.values())
        job.live.clear()
        job.inputs.clear()
        for future in losers:
            self.untrack(str(future.key))
        return losers

    def take_done_tasks(self) -> list[TaskId]:
        """Tasks left with no unfinished job since the last call (a task whose step just
        finished but whose next steps were added meanwhile is not done)."""
        done = [task_id for task_id in self._maybe_done if task_id not in self._open]
        self._maybe_done.clear()
        return done

    def forget(self, job: Job, future: Future[Any]) -> None:
        """One attempt of `job` is over: untrack it and release its future."""
        key = str(future.key)
        self.untrack(key)
        job.live.pop(key, None)
        job.inputs.pop(key, None)
        future.release()

    def untrack(self, key: str) -> None:
        self.by_key.pop(key, None)
        self.submitted_at.pop(key, None)
        self.given_up.discard(key)
        if self._on_untrack is not None:
            self._on_untrack(key)

    def clear(self) -> list[Future[Any]]:
        """The run is over: stop tracking everything; returns the live attempts."""
        live = [future for job in self.jobs.values() for future in job.live.values()]
        for job in self.jobs.values():
            job.inputs.clear()
        self.by_key.clear()
        self.submitted_at.clear()
        return live


def attempt_key(run_id: str, task_id: TaskId, index: tuple[int, ...], step: int,
                attempt: int) -> str:
    """The Dask key of one attempt: readable on the dashboard, unique across runs, and
    injective: the id is type-tagged (`task_id_text`) and what follows it has no "-",
    so two distinct attempts never share a key (a shared key merges two jobs in Dask)."""
    lineage = ".".join(map(str, index)) or "root"
    return f"rs-{run_id}-{task_id_text(task_id)}-{lineage}-s{step}-a{attempt}"


def attempt_of(key: str) -> int:
    return int(key.rsplit("-a", 1)[1])
