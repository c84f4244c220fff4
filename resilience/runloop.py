"""The run loop: submit task steps in batches, collect them as they complete, classify
each failure, resubmit from the registry within `max_attempts`, and deliver every
output exactly once.

A *job* is one task step on one input. It is the unit of submission, resubmission
and deduplication: its first accepted result wins, and a later result of another
attempt of it is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from distributed import Client, Future

from resilience import events
from resilience.config import ResilienceConfig
from resilience.delivery import DeliveryLedger, Output, RunSummary
from resilience.durable import DurableRun
from resilience.errors import ConfigError
from resilience.failures import FailureReasons, classify
from resilience.registry import INITIAL_INPUT, Delivery, RecordKey, StepRecord, TaskRegistry
from resilience.submission import StepSubmitter, attempt_key, attempt_of
from resilience.tasks import TaskId, TaskSpec, repeated_task_id
from resilience.watch import AttemptWatch, find_forgotten

logger = logging.getLogger(__name__)

IDLE_TICK = 1.0  # seconds between housekeeping checks while nothing completes
GATHER_TIMEOUT = 10.0  # a result not fetched in this long is tried again, with twice as long
BATCH_WINDOW = 0.005  # after one attempt resolves, wait this long for others: fewer round trips
MAX_BATCH = 1000
LIMBO_AFTER = 10.0  # idle seconds before asking the scheduler about attempts gone silent

Submission = tuple["_Job", events.SubmitReason]
_DROPPED = object()  # a submitted job's payload: the registry (if any) keeps it


class _Job:
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
        self.resumed = False  # taken over from an earlier session's registry

    @property
    def key(self) -> RecordKey:
        return (self.task.task_id, self.index)

    @classmethod
    def resume(cls, record: StepRecord) -> _Job:
        """A step an earlier session left unfinished. Its interrupted attempt is not
        charged: the client died, not the step."""
        task = TaskSpec(record.task_id, record.kwargs, position=-1)
        job = cls(task, record.index, record.step, record.payload, record.lineage_attempts,
                  record.started_at)
        job.attempts = max(record.attempts - 1, 0)
        job.resumed = True
        return job


class RunLoop:
    """Drives one run to its end. Iterate `run()` for the outputs."""

    def __init__(
        self,
        client: Client,
        config: ResilienceConfig,
        tasks: Iterator[TaskSpec],
        initial_input: Any,
        protocols: Sequence[Callable[..., Any]],
        retries: Sequence[int],
        run_id: str,
        registry: TaskRegistry | None,
        keep_outputs: bool,
        durable: DurableRun | None = None,
    ) -> None:
        self._client = client
        self._config = config
        self._tasks = tasks
        self._initial_input = initial_input
        self._run_id = run_id
        self._registry: TaskRegistry | None = durable.registry if durable else registry
        self._durable = durable
        self._keep_outputs = keep_outputs
        self._retries = list(retries)
        self._watch = (
            None if config.step_timeout is None
            else AttemptWatch(client, run_id, config.step_timeout)
        )
        self._submitter = StepSubmitter(client, config, run_id, protocols, retries,
                                        initial_input, self._watch)
        self._reasons = FailureReasons(config, protocols)

        self._tasks_exhausted = False
        self._deferred_error: ConfigError | None = None
        self._jobs: dict[RecordKey, _Job] = {}  # unfinished jobs
        self._by_key: dict[str, _Job] = {}  # live attempt key -> its job
        self._to_submit: list[Submission] = []
        self._completions: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        self._ledger = DeliveryLedger()
        self._failed: dict[TaskId, list[str]] = defaultdict(list)
        self._outputs: list[Output] = []
        self._counts = {"attempts": 0, "resubmissions": 0, "duplicates": 0, "delivered": 0}
        self._started = time.monotonic()
        self._no_workers_since: float | None = None
        self._last_completion = time.monotonic()
        self._submitted_at: dict[str, float] = {}  # live attempt key -> when submitted
        self._failing_since: float | None = None  # submissions failing since then
        self._next_timeout_check = 0.0
        self._gather_timeout = GATHER_TIMEOUT
        self._given_up: set[str] = set()  # attempts past step_timeout, already handled

    # -- public ------------------------------------------------------------------

    def run(self) -> Iterator[Output]:
        self._submitter.start()
        if self._registry is not None and not (self._durable and self._durable.resumed):
            self._registry.set_initial_input(self._initial_input)
        if self._durable is not None:
            for (task_id, _), reason in self._durable.registry.failures():
                self._failed[task_id].append(f"(in an earlier session) {reason}")
        try:
            while True:
                self._admit_tasks()
                self._submit_pending()
                if not self._by_key and not self._to_submit:
                    if self._tasks_exhausted:
                        break
                    continue
                delivered, delivered_jobs = self._process(self._next_completions())
                outputs = [output for output, _ in delivered]
                if self._durable is not None and self._durable.sink is not None:
                    # Exactly once on disk: written and committed before it is yielded.
                    self._commit_delivery(delivered, delivered_jobs)
                    yield from outputs
                else:
                    # Committed once the consumer asks for more: a client killed before
                    # then redelivers these on resume (at least once, never lost).
                    yield from outputs
                    self._commit_delivery(delivered, delivered_jobs)
                self._check_timeouts()
        finally:
            self._shutdown()
        if self._deferred_error is not None:
            raise self._deferred_error

    def summary(self) -> RunSummary:
        return RunSummary(
            outputs=list(self._outputs),
            failed=self.failed(),
            delivered=self._counts["delivered"],
            attempts=self._counts["attempts"],
            resubmissions=self._counts["resubmissions"],
            duplicates_suppressed=self._counts["duplicates"],
            elapsed=time.monotonic() - self._started,
            in_flight=len(self._jobs),
            previously_delivered=self._durable.previously_delivered if self._durable else 0,
        )

    def failed(self) -> dict[TaskId, str]:
        return {
            task_id: reasons[0]
            + (f" (and {len(reasons) - 1} more failed step(s))" if len(reasons) > 1 else "")
            for task_id, reasons in self._failed.items()
        }

    # -- admission and submission ------------------------------------------------

    def _admit_tasks(self) -> None:
        """Start steps while fewer than max_in_flight are unfinished: first those an
        earlier session left unfinished, then new tasks."""
        room = self._config.max_in_flight - len(self._jobs)
        if room > 0 and self._durable is not None:
            resumed = [_Job.resume(record) for record in self._durable.unfinished(room)]
            self._jobs.update((job.key, job) for job in resumed)
            self._to_submit.extend((job, "resumed") for job in resumed)
            room -= len(resumed)
        tasks: list[TaskSpec] = []
        while not self._tasks_exhausted and len(tasks) < room:
            try:
                tasks.append(next(self._tasks))
            except StopIteration:
                self._tasks_exhausted = True
            except ConfigError as error:
                # A bad task deep in a generator: finish what runs, then raise.
                self._deferred_error = error
                self._tasks_exhausted = True
        tasks = self._drop_repeated_ids(tasks)
        if not tasks:
            return
        now = time.time()
        new = [_Job(task, (), 0, INITIAL_INPUT, (), now) for task in tasks]
        self._jobs.update((job.key, job) for job in new)
        if self._registry is not None:
            progress = self._durable.admitted_progress(tasks) if self._durable else None
            self._registry.update(add=[self._record(job) for job in new], progress=progress)
        self._to_submit.extend((job, "new") for job in new)

    def _drop_repeated_ids(self, tasks: list[TaskSpec]) -> list[TaskSpec]:
        """A durable run checks ids on disk (task_specs checked the others in memory):
        the first repeat ends admission, with a ConfigError once the rest finished."""
        if self._durable is None or not tasks:
            return tasks
        known = self._durable.registry.known_task_ids([task.task_id for task in tasks])
        seen: set[TaskId] = set()
        for count, task in enumerate(tasks):
            if task.task_id in known or task.task_id in seen:
                self._deferred_error = repeated_task_id(task.task_id, task.position,
                                                        "an earlier task of this run")
                self._tasks_exhausted = True
                return tasks[:count]
            seen.add(task.task_id)
        return tasks

    def _submit_pending(self) -> None:
        pending, self._to_submit = self._to_submit, []
        by_step: dict[int, list[Submission]] = defaultdict(list)
        for job, reason in pending:
            if not job.done:
                by_step[job.step].append((job, reason))
        for step, batch in sorted(by_step.items()):
            self._submit_step(step, batch)

    def _submit_step(self, step: int, batch: list[Submission]) -> None:
        jobs = [job for job, _ in batch]
        keys = [attempt_key(self._run_id, job.task.task_id, job.index, step, job.attempts + 1)
                for job in jobs]
        try:
            payloads = self._payloads(jobs)
            futures, inputs = self._submitter.submit(
                step, [(key, payload, job.task.kwargs)
                       for key, payload, job in zip(keys, payloads, jobs, strict=True)]
            )
        except Exception as error:  # e.g. no worker to scatter to: try again next round
            self._submission_failed(batch, error)
            return
        self._failing_since = None
        if self._registry is not None:
            self._registry.set_attempts([(job.key, job.attempts + 1) for job in jobs
                                         if job.attempts > 0 or job.resumed])
        for job, key, future, placed in zip(jobs, keys, futures, inputs, strict=True):
            job.attempts += 1
            job.payload = _DROPPED
            job.live[key] = future
            job.inputs[key] = placed
            self._by_key[key] = job
            self._submitted_at[key] = time.monotonic()
            future.add_done_callback(self._completions.put)
        for (job, reason), key in zip(batch, keys, strict=True):
            self._counts["attempts"] += 1
            self._counts["resubmissions"] += job.attempts > 1
            self._emit(events.StepSubmitted(
                job.task.task_id, job.index, step, job.attempts, key, reason
            ))

    def _submission_failed(self, batch: list[Submission], error: Exception) -> None:
        """Retry next round; past worker_wait_timeout of failures, fail the batch."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since < self._config.worker_wait_timeout:
            logger.warning("could not submit %d step(s) yet: %r", len(batch), error)
            self._to_submit.extend(batch)
            return
        no_workers = self._count_workers() == 0
        for job, _ in batch:
            if no_workers:
                self._fail(job, self._reasons.no_workers().format(step=job.step),
                           for_good=False)
            else:
                self._fail(job, self._reasons.unsubmittable(job.step, repr(error)))

    def _payloads(self, jobs: list[_Job]) -> list[Any]:
        """Each job's input: its own (first attempt) or the registry's copy (a resubmission)."""
        if self._registry is None:
            return [job.payload for job in jobs]
        resubmitted = [job for job in jobs if job.payload is _DROPPED]
        records = self._registry.get_many([job.key for job in resubmitted])
        for job, record in zip(resubmitted, records, strict=True):
            if record is None:
                raise RuntimeError(f"no registry record for unfinished step {job.key}")
            job.payload = record.payload
        return [job.payload for job in jobs]

    # -- completion ----------------------------------------------------------------

    def _next_completions(self) -> list[Future[Any]]:
        """The attempts that resolved: waits for one, then briefly for any that follow."""
        try:
            batch = [self._completions.get(timeout=self._tick())]
        except queue.Empty:
            self._watch_workers()
            self._find_limbo()
            return []
        self._no_workers_since = None
        self._last_completion = time.monotonic()
        window_ends = time.monotonic() + BATCH_WINDOW
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._completions.get(
                    timeout=max(0.0, window_ends - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[Future[Any]]
                 ) -> tuple[list[tuple[Output, _Job]], list[RecordKey]]:
        """Accept results, suppress duplicates, handle failures; returns the outputs to
        deliver (with their jobs), and the jobs whose records go once they are delivered."""
        outputs: list[tuple[Output, _Job]] = []
        advanced: list[RecordKey] = []
        delivered: list[RecordKey] = []
        children: list[_Job] = []
        # Jobs are looked up first: accepting one attempt untracks its siblings, and a
        # sibling that finished in this same batch is a duplicate to suppress.
        ours = [(f, self._by_key[f.key]) for f in batch if f.key in self._by_key]
        results = self._gather([f for f, _ in ours if f.status == "finished"])
        for future, job in ours:
            key = str(future.key)
            if key in results:
                self._forget(job, future)
                if job.done:
                    self._counts["duplicates"] += 1
                    self._emit(events.DuplicateSuppressed(
                        job.task.task_id, job.index, job.step, attempt_of(key), key))
                    continue
                new = self._accept(job, key, results[key], outputs)
                (advanced if new is not None else delivered).append(job.key)
                children.extend(new or ())
            elif job.done:
                self._forget(job, future)  # a sibling already won: nothing to learn here
            elif future.status in ("error", "cancelled"):
                cause, error = classify(future)  # before release, which clears the error
                self._forget(job, future)
                self._on_failure(job, key, cause, error)
            else:  # finished but not fetched, or reset by Dask to recompute a lost result
                future.add_done_callback(self._completions.put)
        if self._registry is not None and (advanced or children):
            self._registry.update(add=[self._record(c) for c in children], remove=advanced)
        self._jobs.update((child.key, child) for child in children)
        self._to_submit.extend((child, "new") for child in children)
        return outputs, delivered

    def _gather(self, futures: list[Future[Any]]) -> dict[str, Any]:
        """Fetch finished results in one round trip; what cannot be fetched is skipped."""
        if not futures:
            return {}
        try:
            gathered = self._client.sync(
                self._client._gather,
                {f.key: f for f in futures},
                errors="skip",
                callback_timeout=self._gather_timeout,
            )
        except (TimeoutError, asyncio.TimeoutError):
            # A result stuck mid-recovery in Dask, or just a large one on a slow link.
            logger.warning("fetching %d results took over %ss; retrying", len(futures),
                           self._gather_timeout)
            self._gather_timeout *= 2
            return {}
        self._gather_timeout = GATHER_TIMEOUT
        # Results are lists; None marks a key that errored or was cancelled meanwhile.
        return {key: value for key, value in gathered.items() if value is not None}

    def _accept(self, job: _Job, key: str, values: list[Any],
                outputs: list[tuple[Output, _Job]]) -> list[_Job] | None:
        """Take an attempt's result. Returns the next step's jobs, or None when delivered."""
        job.done = True
        del self._jobs[job.key]
        self._cancel_losers(job)
        self._emit(events.StepCompleted(
            job.task.task_id, job.index, job.step, job.attempts, key, len(values)))
        lineage = (*job.lineage_attempts, job.attempts)
        if job.step + 1 < self._submitter.steps:
            return [_Job(job.task, (*job.index, position), job.step + 1, value, lineage,
                         job.started_at)
                    for position, value in enumerate(values)]
        indexes = [(*job.index, position) for position in range(len(values))]
        for index, value, new in zip(indexes, values, self._claim(job.task.task_id, indexes),
                                     strict=True):
            if new:
                output = Output(job.task.task_id, index, value, max(lineage), lineage)
                outputs.append((output, job))
                if self._keep_outputs:
                    self._outputs.append(output)
        return None

    def _claim(self, task_id: TaskId, indexes: list[tuple[int, ...]]) -> list[bool]:
        """Whether each output is new: a durable run asks its ledger on disk (memory stays
        bounded, and it spans sessions), any other run an in-memory ledger."""
        if self._durable is not None:
            done = self._durable.registry.is_delivered([(task_id, index) for index in indexes])
            return [not flag for flag in done]
        return [self._ledger.claim(task_id, index) for index in indexes]

    def _commit_delivery(self, delivered: list[tuple[Output, _Job]],
                         delivered_jobs: list[RecordKey]) -> None:
        """Record delivered outputs (ledger, output folder) and drop their jobs' records,
        in one registry transaction."""
        self._counts["delivered"] += len(delivered)
        if self._registry is None or not (delivered or delivered_jobs):
            return
        entries: list[Delivery] = []
        progress = None
        if self._durable is not None and self._durable.sink is not None:
            entries = self._durable.sink.write(
                [(output, job.task.kwargs, job.started_at) for output, job in delivered])
            progress = self._durable.sink.committed_progress()
        elif self._durable is not None:
            entries = [Delivery(o.task_id, o.index, o.attempts) for o, _ in delivered]
        self._registry.update(remove=delivered_jobs, delivered=entries, progress=progress)

    def _on_failure(self, job: _Job, key: str, cause: events.FailureCause, error: str) -> None:
        self._emit(events.StepFailed(
            job.task.task_id, job.index, job.step, attempt_of(key), key, cause, error))
        if not job.live:  # else another attempt is still running: it may yet succeed
            self._retry_or_fail(job, cause, error)

    def _can_resubmit(self, job: _Job, cause: events.FailureCause) -> bool:
        """A step lost to the cluster (not to its protocol) is resubmitted from the
        registry, until max_attempts."""
        return (cause != "protocol-error" and self._registry is not None
                and job.attempts < self._config.max_attempts)

    def _retry_or_fail(self, job: _Job, cause: events.FailureCause, error: str) -> None:
        """Resubmit the step (its live attempts, if any, keep running), or fail its task."""
        if self._can_resubmit(job, cause):
            self._to_submit.append((job, _resubmit_reason(cause)))
            return
        if cause != "protocol-error" and self._registry is not None:
            reason = self._reasons.exhausted(job.step, job.attempts, cause, error)
        else:
            reason = self._reasons.unrecoverable(job.step, cause, error)
        self._fail(job, reason)

    def _fail(self, job: _Job, reason: str, for_good: bool = True) -> None:
        """Report the job's task failed. Unless `for_good` (the cluster, not the task,
        was at fault), a durable run keeps its record, so that a rerun resumes it."""
        job.done = True
        self._jobs.pop(job.key, None)
        self._cancel_losers(job)
        self._failed[job.task.task_id].append(reason)
        self._emit(events.TaskFailed(job.task.task_id, reason))
        if self._registry is not None and (for_good or not self._registry.durable):
            self._registry.update(failed=[(job.key, reason)])

    # -- timeouts ------------------------------------------------------------------

    def _tick(self) -> float:
        if self._config.step_timeout is None:
            return IDLE_TICK
        return max(0.01, min(IDLE_TICK, self._config.step_timeout / 4))

    def _check_timeouts(self) -> None:
        """Start another attempt of a step past step_timeout (or fail it), and of steps
        queued on a worker that stopped answering."""
        now = time.monotonic()
        if self._watch is None or now < self._next_timeout_check:
            return
        self._next_timeout_check = now + self._tick()
        stuck, behind = self._watch.stuck(k for k in self._by_key if k not in self._given_up)
        if self._registry is None:
            behind = set()  # not started, so their time has not begun; and nothing to move
        self._given_up |= stuck | behind
        error = (f"ran past step_timeout={self._config.step_timeout}s, or waited on a worker "
                 "that stopped answering")
        for job in dict.fromkeys(self._by_key[key] for key in stuck | behind):
            if job.done:
                continue
            if not self._can_resubmit(job, "step-timeout"):
                # Else the old attempts keep running beside the new one: either may win.
                for key in job.live:
                    self._emit(events.StepFailed(job.task.task_id, job.index, job.step,
                                                 attempt_of(key), key, "step-timeout", error))
            self._retry_or_fail(job, "step-timeout", f"attempt {job.attempts} {error}")

    def _find_limbo(self) -> None:
        """Fail over attempts whose futures wait on keys the scheduler has forgotten.

        Checked only after LIMBO_AFTER idle seconds, and only for attempts older than
        that, so that a key still on its way to the scheduler is never mistaken."""
        now = time.monotonic()
        if now - self._last_completion < LIMBO_AFTER:
            return
        self._last_completion = now  # at most one check per idle period of that length
        old = [key for key, at in self._submitted_at.items() if now - at > LIMBO_AFTER]
        for key in find_forgotten(self._client, old):
            job = self._by_key.get(key)
            if job is None:
                continue
            future = job.live[key]
            self._forget(job, future)
            self._on_failure(job, key, "lost-input",
                             f"{key} was forgotten by the scheduler while its future waited")

    def _watch_workers(self) -> None:
        """End the run when the cluster has had no worker for worker_wait_timeout."""
        if not self._by_key and not self._to_submit:
            return
        workers = self._count_workers()
        now = time.monotonic()
        if workers:
            self._no_workers_since = None
            return
        if self._no_workers_since is None:
            self._no_workers_since = now
        if now - self._no_workers_since < self._config.worker_wait_timeout:
            return
        reason = self._reasons.no_workers()
        for job in list(self._jobs.values()):
            self._fail(job, reason.format(step=job.step), for_good=False)
        while self._durable is not None and (page := self._durable.unfinished(MAX_BATCH)):
            for record in page:
                self._fail(_Job.resume(record), reason.format(step=record.step),
                           for_good=False)
        self._to_submit.clear()
        try:
            for task in self._tasks:
                self._failed[task.task_id].append("never started: " + reason.format(step=0))
        except ConfigError as error:
            self._deferred_error = error
        self._tasks_exhausted = True

    def _count_workers(self) -> int:
        try:
            return len(self._client.nthreads())
        except Exception:  # the scheduler is unreachable: as bad as no workers
            return 0

    # -- bookkeeping ---------------------------------------------------------------

    def _forget(self, job: _Job, future: Future[Any]) -> None:
        self._untrack(str(future.key))
        job.live.pop(str(future.key), None)
        job.inputs.pop(str(future.key), None)
        future.release()

    def _untrack(self, key: str) -> None:
        self._by_key.pop(key, None)
        self._submitted_at.pop(key, None)
        self._given_up.discard(key)
        if self._watch is not None:
            self._watch.forget(key)

    def _cancel_losers(self, job: _Job) -> None:
        losers = list(job.live.values())
        job.live.clear()
        job.inputs.clear()
        for future in losers:
            self._untrack(str(future.key))
        if losers:
            self._client.cancel(losers)

    def _record(self, job: _Job) -> StepRecord:
        """The registry's copy of a job, counting the submission about to happen."""
        return StepRecord(
            task_id=job.task.task_id,
            index=job.index,
            step=job.step,
            payload=job.payload,
            kwargs=job.task.kwargs,
            attempts=1,
            options={"retries": self._retries[job.step]},
            lineage_attempts=job.lineage_attempts,
            started_at=job.started_at,
        )

    def _emit(self, event: events.RunEvent) -> None:
        if self._config.on_event is None:
            return
        try:
            self._config.on_event(event)
        except Exception:
            logger.exception("on_event raised on %r; ignored", event)

    def _shutdown(self) -> None:
        live = [future for job in self._jobs.values() for future in job.live.values()]
        for job in self._jobs.values():
            job.inputs.clear()
        self._by_key.clear()
        self._submitted_at.clear()
        if live:
            try:
                self._client.cancel(live)
            except Exception as error:
                logger.warning("cancelling %d unfinished attempts failed: %r", len(live), error)
        self._submitter.close()
        if self._watch is not None:
            self._watch.close()


def _resubmit_reason(cause: events.FailureCause) -> events.SubmitReason:
    if cause in ("lost-input", "killed-worker", "step-timeout"):
        return cause
    raise ValueError(f"a {cause} is not resubmitted")
