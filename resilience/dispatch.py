"""Putting steps on the cluster: admission into the run, the registry's copies of the
inputs of resubmitted steps, and the batched submission of attempts.

A submission that fails (no worker to scatter to, say) is tried again at the next
round until `worker_wait_timeout`; then its steps fail, or, when the cluster has no
worker at all, the run ends (`out_of_workers`), as a wait for workers does. The
`Dispatcher` decides, the run loop reports: steps that must fail come back from
`submit_pending()` with why.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from distributed import Future

from resilience import events
from resilience.admission import Admission
from resilience.config import ResilienceConfig
from resilience.durable import DurableRun
from resilience.failures import FailureReasons
from resilience.jobs import DROPPED, Job, JobBook, Submission, attempt_key
from resilience.registry import TaskRegistry
from resilience.stalls import WorkerWait
from resilience.submission import StepSubmitter

logger = logging.getLogger(__name__)

# A step to report failed: the job, why, and whether for good (else a durable run keeps
# its record, to resume it when run again: the cluster was at fault, not the task).
Failure = tuple[Job, str, bool]


class Dispatcher:
    """Admits tasks and submits the book's pending steps for one run."""

    def __init__(self, config: ResilienceConfig, run_id: str, book: JobBook,
                 admission: Admission, submitter: StepSubmitter,
                 registry: TaskRegistry | None, durable: DurableRun | None,
                 retries: list[int], worker_wait: WorkerWait, reasons: FailureReasons, *,
                 on_done: Callable[[Future[Any]], None],
                 emit: Callable[[events.RunEvent], None]) -> None:
        self._config = config
        self._run_id = run_id
        self._book = book
        self._admission = admission
        self._submitter = submitter
        self._registry = registry
        self._durable = durable
        self._retries = retries
        self._worker_wait = worker_wait
        self._reasons = reasons
        # No worker for worker_wait_timeout while submitting: the run loop ends the run
        # (every task reported at once, not one admitted batch failed per round).
        self.out_of_workers = False
        self._on_done = on_done  # told when an attempt's future settles
        self._emit = emit
        self._failing_since: float | None = None  # submissions failing since then
        self.attempts = 0
        self.resubmissions = 0

    def admit(self) -> None:
        """Start steps while fewer than max_in_flight are unfinished."""
        room = self._config.max_in_flight - len(self._book.jobs)
        if room <= 0:
            return
        resumed, new, tasks = self._admission.admit(room)
        self._book.add(resumed, "resumed")
        if not new:
            return
        if self._registry is not None:
            progress = self._durable.admitted_progress(tasks) if self._durable else None
            self._registry.update(add=[job.record(self._retries[job.step]) for job in new],
                                  progress=progress)
        self._book.add(new, "new")

    def submit_pending(self) -> list[Failure]:
        """Submit the book's pending steps, a batch per step; returns those to fail."""
        by_step: dict[int, list[Submission]] = defaultdict(list)
        for job, reason in self._book.take_pending():
            by_step[job.step].append((job, reason))
        failures: list[Failure] = []
        for step, batch in sorted(by_step.items()):
            failures += self._submit_step(step, batch)
        return failures

    def _submit_step(self, step: int, batch: list[Submission]) -> list[Failure]:
        batch, failures = self._with_payloads(batch)
        if not batch:
            return failures
        jobs = [job for job, _ in batch]
        keys = [attempt_key(self._run_id, job.task.task_id, job.index, step, job.attempts + 1)
                for job in jobs]
        try:
            futures, inputs = self._submitter.submit(
                step, [(key, job.payload, job.task.kwargs) for key, job in zip(keys, jobs,
                                                                                  strict=True)]
            )
        except Exception as error:  # e.g. no worker to scatter to: try again next round
            return failures + self._submission_failed(batch, error)
        self._failing_since = None
        if self._registry is not None:  # a first attempt's record was written with 1
            self._registry.set_attempts([(job.key, job.attempts + 1) for job in jobs
                                         if job.attempts > 0])
        # Without a registry, the client keeps the inputs placed short of their copies.
        short = (self._submitter.lacking_copies(inputs) if self._registry is None
                 else [False] * len(jobs))
        for job, key, future, placed, keep in zip(jobs, keys, futures, inputs, short,
                                                  strict=True):
            self._book.track(job, key, future, placed, keep_payload=keep)
            future.add_done_callback(self._on_done)
        for (job, reason), key in zip(batch, keys, strict=True):
            self.attempts += 1
            self.resubmissions += job.attempts > 1
            self._emit(events.StepSubmitted(
                job.task.task_id, job.index, step, job.attempts, key, reason
            ))
        return failures

    def _submission_failed(self, batch: list[Submission], error: Exception) -> list[Failure]:
        """Retry next round; past worker_wait_timeout of failures, fail the batch. A value
        that cannot be pickled fails it at once: it never will be."""
        if _unpicklable(error):
            return [(job, self._reasons.unserializable(job.step, repr(error)), True)
                    for job, _ in batch]
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since < self._config.worker_wait_timeout:
            logger.warning("could not submit %d step(s) yet: %r", len(batch), error)
            self._book.pending.extend(batch)
            return []
        if self._worker_wait.count_workers() == 0:
            self.out_of_workers = True
            self._book.pending.extend(batch)
            return []
        return [(job, self._reasons.unsubmittable(job.step, repr(error)), True)
                for job, _ in batch]

    def _with_payloads(self, batch: list[Submission]) -> tuple[list[Submission], list[Failure]]:
        """Give each resubmitted job the registry's copy of its input. A job whose record
        is missing can never run again: its task fails now, loudly (an internal error),
        rather than being retried until the run's time runs out."""
        resubmitted = [job for job, _ in batch if job.payload is DROPPED]
        if self._registry is None or not resubmitted:
            return batch, []
        records = self._registry.get_many([job.key for job in resubmitted])
        missing: list[Failure] = []
        for job, record in zip(resubmitted, records, strict=True):
            if record is None:
                missing.append((job, f"internal error: the registry has no record of step "
                                     f"{job.step} (lineage {job.index}), so it cannot be "
                                     "resubmitted", True))
            else:
                job.payload = record.payload
        return [(job, reason) for job, reason in batch if job.payload is not DROPPED], missing


def _unpicklable(error: Exception) -> bool:
    """Dask's serialization refused a value (it raises TypeError("Could not serialize
    object of type ...")), or pickle did."""
    return isinstance(error, pickle.PicklingError) or (
        isinstance(error, TypeError) and "serialize" in str(error))
