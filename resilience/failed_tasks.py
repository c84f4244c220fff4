"""`FailedTasks`: the run loop's record of the tasks it reported failed, and the one way
it reports them: finishing the job, an event, and (when the cluster was at fault, only
in a run that cannot resume) the registry's record.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from distributed import Future

from resilience import events
from resilience.admission import Admission
from resilience.durable import DurableRun
from resilience.jobs import Job, JobBook
from resilience.outputs import TaskId
from resilience.registry import TaskRegistry

logger = logging.getLogger(__name__)

PAGE = 1000  # a durable run's unfinished records are failed this many at a time


class FailedTasks:
    """Reports tasks failed, and keeps every reason given for each."""

    def __init__(self, book: JobBook, admission: Admission, registry: TaskRegistry | None,
                 durable: DurableRun | None, emit: Callable[[events.RunEvent], None],
                 cancel: Callable[[list[Future[Any]]], None]) -> None:
        self._book = book
        self._admission = admission
        self._registry = registry
        self._durable = durable
        self._emit = emit
        self._cancel = cancel  # the job's other attempts, which can no longer matter
        self._reasons: dict[TaskId, list[str]] = defaultdict(list)
        if durable is not None:
            for (task_id, _), reason in durable.registry.failures():
                self._reasons[task_id].append(f"(in an earlier session) {reason}")

    def by_task(self) -> dict[TaskId, str]:
        """Each failed task's first reason, and how many more of its steps failed."""
        return {
            task_id: reasons[0]
            + (f" (and {len(reasons) - 1} more failed step(s))" if len(reasons) > 1 else "")
            for task_id, reasons in self._reasons.items()
        }

    def fail(self, job: Job, reason: str, for_good: bool = True) -> None:
        """Report the job's task failed. Unless `for_good` (the cluster, not the task,
        was at fault), a durable run keeps its record, so that a rerun resumes it."""
        self._cancel(self._book.finish(job))
        self._reasons[job.task.task_id].append(reason)
        self._emit(events.TaskFailed(job.task.task_id, reason))
        if self._registry is not None and (for_good or not self._registry.durable):
            self._registry.update(failed=[(job.key, reason)])

    def fail_unfinished(self, reason: str) -> None:
        """Report every unfinished step failed with `reason` (a template with {step}); a
        durable run keeps their records, to resume them when run again."""
        for job in list(self._book.jobs.values()):
            self.fail(job, reason.format(step=job.step), for_good=False)
        while self._durable is not None and (page := self._durable.unfinished(PAGE)):
            for record in page:
                self.fail(Job.resume(record), reason.format(step=record.step), for_good=False)
        self._book.pending.clear()
        for task_id in self._admission.never_started():
            self._reasons[task_id].append("never started: " + reason.format(step=0))

    def fail_unaccounted(self) -> None:
        """The run's invariant: it ends only when every admitted task is delivered or
        reported failed. With nothing live and nothing to submit, an unfinished job can
        never finish: an internal error, reported as its task's failure, never silence."""
        for job in list(self._book.jobs.values()):
            reason = (f"internal error: step {job.step} (lineage {job.index}) was neither "
                      "delivered nor reported failed, and no attempt of it was left to run; "
                      "please report this as a bug of the resilience library")
            logger.error("task %r: %s", job.task.task_id, reason)
            self.fail(job, reason)
