"""The run loop: collect task steps as they complete, hand each failure to the recovery
policy, and deliver every output exactly once.

Jobs (one task step on one input) are admitted and submitted in batches by the
`Dispatcher`, live in a `JobBook` while unfinished, and are decided on, when an attempt
fails, by the `RecoveryPolicy`.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from distributed import Client, Future

from resilience import events
from resilience.admission import Admission
from resilience.config import ResilienceConfig
from resilience.delivery import Delivered, Deliverer
from resilience.dispatch import Dispatcher
from resilience.durable import DurableRun
from resilience.errors import ResilienceError
from resilience.failed_tasks import FailedTasks
from resilience.failures import FailureReasons, classify
from resilience.fetch import Fetched, ResultFetcher
from resilience.jobs import Job, JobBook, attempt_of
from resilience.notices import WorkerNotice, WorkerNotices
from resilience.outputs import Output, RunSummary, TaskId
from resilience.recovery import RecoveryPolicy
from resilience.registry import RecordKey, TaskRegistry
from resilience.scheduler_watch import SchedulerWatch
from resilience.stalled import StalledAttempts
from resilience.stalls import LimboClock, WorkerWait
from resilience.submission import StepSubmitter
from resilience.tasks import TaskSpec
from resilience.watch import AttemptWatch

logger = logging.getLogger(__name__)

IDLE_TICK = 1.0  # seconds between housekeeping checks while nothing completes
BATCH_WINDOW = 0.005  # after one attempt resolves, wait this long for others: fewer round trips
MAX_BATCH = 1000
LOST_RECHECK = 0.1  # seconds between looks at a result Dask is recomputing
MIN_TICK = 0.01  # seconds: however small step_timeout is, the run loop does not spin

# What wakes the run loop: an attempt's future changed state, a fetch ended, a worker
# joined or left.
Completion = Future[Any] | Fetched | WorkerNotice


def housekeeping_tick(step_timeout: float | None) -> float:
    """Seconds the run loop waits for a completion before its checks: a quarter of
    step_timeout, so that a step past it is noticed at most a quarter of it late."""
    if step_timeout is None:
        return IDLE_TICK
    return max(MIN_TICK, min(IDLE_TICK, step_timeout / 4))


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
        self._recovery = RecoveryPolicy(config, self._registry is not None, self._reasons)
        self._admission = Admission(tasks, durable)
        self._book = JobBook(None if self._watch is None else self._watch.forget)
        self._completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._deliverer = Deliverer(self._registry, durable)
        self._fetcher = ResultFetcher(client, self._completions.put)
        self._fetch_jobs: dict[str, Job] = {}  # attempt key -> its job, while fetched
        self._notices = WorkerNotices(client, run_id, self._completions.put)
        self._failures = FailedTasks(self._book, self._admission, self._registry, durable,
                                     self._emit, self._cancel)
        self._outputs: list[Output] = []
        self._duplicates = 0
        self._started = time.monotonic()
        self._worker_wait = WorkerWait(client, config.worker_wait_timeout, self._emit)
        self._dispatch = Dispatcher(config, run_id, self._book, self._admission,
                                    self._submitter, self._registry, durable, self._retries,
                                    self._worker_wait, self._reasons,
                                    on_done=self._completions.put, emit=self._emit)
        self._limbo = LimboClock()
        self._stalled = StalledAttempts(client, self._book, self._watch,
                                        inputs_kept=self._registry is not None,
                                        every=self._tick())
        self._scheduler = SchedulerWatch(client, config.scheduler_timeout)
        self.scheduler_lost: str | None = None  # why the run stopped, when the scheduler did
        self.internal_error: Exception | None = None  # what stopped it, when the loop failed

    # -- public ------------------------------------------------------------------

    def run(self) -> Iterator[Output]:
        self._submitter.start()
        self._notices.start()
        if self._registry is not None and self._durable is None:  # a durable one has it
            self._registry.set_initial_input(self._initial_input)
        try:
            while True:
                link = self._scheduler.check()
                if link == "back":  # most likely a new scheduler, which knows no key of
                    self._submitter.reconnected()  # this run: find them all at once
                    self._notices.reconnected()
                    self._find_limbo(every=True)
                elif link == "waiting":
                    continue
                elif link == "lost":
                    self.scheduler_lost = why = self._scheduler.reason or "scheduler lost"
                    self._failures.fail_unfinished(self._reasons.scheduler_lost(why))
                    break
                self._dispatch.admit()
                for job, reason, for_good in self._dispatch.submit_pending():
                    self._failures.fail(job, reason, for_good)
                if self._dispatch.out_of_workers:
                    self._failures.fail_unfinished(self._reasons.no_workers())
                if not self._book.waiting:
                    self._failures.fail_unaccounted()
                    if self._admission.exhausted:
                        break
                    continue
                try:
                    delivered, finished = self._process(self._next_completions())
                except OSError:  # a comm closed under us: the scheduler may be gone
                    if not self._scheduler.noticed_a_loss():
                        raise
                    continue  # waited for (bounded) at the top of the loop
                yield from self._deliverer.hand_out(delivered, finished)
                self._check_timeouts()
                self._find_limbo()
                self._restart_stalled_fetches()
        except ResilienceError:  # its own verdicts (a registry failing its signature, an
            raise  # output that cannot be written) say what to do, as they are
        except Exception as error:  # a bug of the library: reported, never silence
            logger.exception("the run loop failed; every unfinished task is reported failed")
            self.internal_error = error
            self._failures.fail_unfinished(self._reasons.internal(error))
        finally:
            self._shutdown()
        if self._admission.deferred_error is not None:
            raise self._admission.deferred_error

    def summary(self) -> RunSummary:
        return RunSummary(
            outputs=list(self._outputs),
            failed=self._failures.by_task(),
            delivered=self._deliverer.delivered,
            attempts=self._dispatch.attempts,
            resubmissions=self._dispatch.resubmissions,
            duplicates_suppressed=self._duplicates,
            elapsed=time.monotonic() - self._started,
            in_flight=len(self._book.jobs),
            previously_delivered=self._durable.previously_delivered if self._durable else 0,
        )

    def failed(self) -> dict[TaskId, str]:
        return self._failures.by_task()

    # -- completion ----------------------------------------------------------------

    def _next_completions(self) -> list[Completion]:
        """What happened: waits for one thing (no longer than until the look for attempts
        in limbo a departure asked for), then briefly for any that follow."""
        timeout = self._tick()
        if (look_in := self._limbo.due_in()) is not None:
            timeout = min(timeout, look_in)
        try:
            batch = [self._completions.get(timeout=timeout)]
        except queue.Empty:
            self._watch_workers()
            return []
        if not isinstance(batch[0], WorkerNotice):
            self._worker_wait.end()  # a step completed: workers are back
        self._limbo.activity()
        window_ends = time.monotonic() + BATCH_WINDOW
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._completions.get(
                    timeout=max(0.0, window_ends - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[Completion]) -> tuple[list[Delivered], list[RecordKey]]:
        """Accept fetched results, suppress duplicates, handle failures, start fetches;
        returns the outputs to deliver (with their jobs), and the jobs whose records go
        once they are delivered."""
        outputs: list[Delivered] = []
        advanced: list[RecordKey] = []
        delivered: list[RecordKey] = []
        children: list[Job] = []
        to_fetch: list[Future[Any]] = []
        for item in batch:
            if isinstance(item, WorkerNotice):
                self._on_notice(item)
            elif isinstance(item, Fetched):
                self._fetcher.done(item)
                for future in item.futures:
                    job = self._fetch_jobs.pop(str(future.key), None)
                    key = str(future.key)
                    if job is None:
                        continue
                    if key not in item.results:  # errored, cancelled, or not fetched
                        self._on_state_change(future, to_fetch)
                        continue
                    self._book.forget(job, future)
                    if job.done:  # a sibling won first (maybe in this same batch)
                        self._duplicates += 1
                        self._emit(events.DuplicateSuppressed(
                            job.task.task_id, job.index, job.step, attempt_of(key), key))
                        continue
                    new = self._accept(job, key, item.results[key], outputs)
                    (advanced if new is not None else delivered).append(job.key)
                    children.extend(new or ())
            else:
                self._on_state_change(item, to_fetch)
        if self._registry is not None and (advanced or children):
            self._registry.update(add=[c.record(self._retries[c.step]) for c in children],
                                  remove=advanced)
        self._book.add(children, "new")
        self._deliverer.tasks_done(self._book.take_done_tasks())
        self._fetcher.start(to_fetch)
        return outputs, delivered

    def _on_state_change(self, future: Future[Any], to_fetch: list[Future[Any]]) -> None:
        """An attempt's future changed: fetch its result, or handle its failure."""
        key = str(future.key)
        job = self._book.by_key.get(key)
        if job is None:
            # No longer tracked: released, failed over, or its step is done (finishing a
            # job untracks its other attempts, so a tracked attempt's job is never done).
            return
        if future.status == "finished":
            if key not in self._fetch_jobs:
                self._fetch_jobs[key] = job
                to_fetch.append(future)
        elif future.status in ("error", "cancelled"):
            cause, error = classify(future)  # before release, which clears the error
            self._book.forget(job, future)
            self._on_failure(job, key, cause, error)
        elif future.status == "lost" and (loop := self._client.loop) is not None:
            # Its result is being recomputed. Dask calls a done-callback at once on a lost
            # future: re-armed now, the loop would spin for as long as the recompute takes.
            loop.add_callback(loop.call_later, LOST_RECHECK, future.add_done_callback,
                              self._completions.put)
        else:  # reset by Dask to run again: wait for it
            future.add_done_callback(self._completions.put)

    def _accept(self, job: Job, key: str, values: list[Any],
                outputs: list[Delivered]) -> list[Job] | None:
        """Take an attempt's result. Returns the next step's jobs, or None when delivered."""
        self._cancel(self._book.finish(job))
        self._emit(events.StepCompleted(
            job.task.task_id, job.index, job.step, job.attempts, key, len(values)))
        lineage = (*job.lineage_attempts, job.attempts)
        if job.step + 1 < self._submitter.steps:
            return [Job(job.task, (*job.index, position), job.step + 1, value, lineage,
                        job.started_at)
                    for position, value in enumerate(values)]
        indexes = [(*job.index, position) for position in range(len(values))]
        claims = self._deliverer.claim(job.task.task_id, indexes)
        for index, value, new in zip(indexes, values, claims, strict=True):
            if new:
                output = Output(job.task.task_id, index, value, max(lineage), lineage)
                outputs.append((output, job.task.kwargs, job.started_at))
                if self._keep_outputs:
                    self._outputs.append(output)
        return None

    # -- failures --------------------------------------------------------------------

    def _on_failure(self, job: Job, key: str, cause: events.FailureCause, error: str) -> None:
        self._emit(events.StepFailed(
            job.task.task_id, job.index, job.step, attempt_of(key), key, cause, error))
        if not job.live:  # else another attempt is still running: it may yet succeed
            self._retry_or_fail(job, cause, error)

    def _retry_or_fail(self, job: Job, cause: events.FailureCause, error: str) -> None:
        """Enact the recovery policy's decision: resubmit the step (its live attempts, if
        any, keep running), or fail its task."""
        decision = self._recovery.decide(job.step, job.attempts, cause, error,
                                         job.holds_payload)
        if decision.resubmit is not None:
            self._book.pending.append((job, decision.resubmit))
        else:
            self._failures.fail(job, decision.failure or f"{cause}: {error}")

    # -- stalls: timeouts, forgotten keys, no workers ---------------------------------

    def _tick(self) -> float:
        return housekeeping_tick(self._config.step_timeout)

    def _check_timeouts(self) -> None:
        """Start another attempt of a step past step_timeout (or fail it), and of steps
        queued on a worker that stopped answering."""
        error = (f"ran past step_timeout={self._config.step_timeout}s, or waited on a worker "
                 "that stopped answering")
        for job in self._stalled.past_timeout():
            if not self._recovery.can_resubmit(job.attempts, "step-timeout", job.holds_payload):
                # Else the old attempts keep running beside the new one: either may win.
                for key in job.live:
                    self._emit(events.StepFailed(job.task.task_id, job.index, job.step,
                                                 attempt_of(key), key, "step-timeout", error))
            self._retry_or_fail(job, "step-timeout", f"attempt {job.attempts} {error}")

    def _on_notice(self, notice: WorkerNotice) -> None:
        if notice.action == "removed":  # look for attempts Dask lost track of, soon
            self._limbo.worker_left()
            self._fetcher.restart_started_before(time.monotonic())

    def _find_limbo(self, every: bool = False) -> None:
        """When the `LimboClock` says to look (at `every` attempt after a reconnection):
        take up attempts that settled while their completion never came, and fail over
        those whose futures wait on keys the scheduler has forgotten, or on inputs that
        are not where it says."""
        cutoff = self._limbo.cutoff(every)
        if cutoff is None:
            return
        if settled := self._stalled.settled(self._fetch_jobs):
            logger.info("taking up %d settled attempt(s) whose completions had not come (a "
                        "done-callback blocking Dask's callback thread would explain it)",
                        len(settled))
            to_fetch: list[Future[Any]] = []
            for future in settled:
                self._on_state_change(future, to_fetch)
            self._fetcher.start(to_fetch)
        for job, key in self._stalled.forgotten(cutoff, every):
            self._book.forget(job, job.live[key])
            self._on_failure(job, key, "lost-input",
                             f"{key} was forgotten by the scheduler while its future waited")
        for job, key in self._stalled.on_phantom_inputs(cutoff):
            self._book.forget(job, job.live[key])
            self._on_failure(job, key, "lost-input",
                             f"{key} waited on an input its worker was said to hold and "
                             "did not (a worker restarted at a dead one's address)")

    def _restart_stalled_fetches(self) -> None:
        for keys, seconds in self._fetcher.restart_stalled():
            self._emit(events.ResultsDelayed(keys, round(seconds, 3)))

    def _watch_workers(self) -> None:
        """End the run when the cluster has had no worker for worker_wait_timeout."""
        if self._book.waiting and self._worker_wait.timed_out(len(self._book.jobs)):
            self._failures.fail_unfinished(self._reasons.no_workers())

    # -- bookkeeping ---------------------------------------------------------------

    def _cancel(self, losers: list[Future[Any]]) -> None:
        if losers and self._client.status == "running":  # a lost scheduler forgot them
            self._client.cancel(losers)

    def _emit(self, event: events.RunEvent) -> None:
        if self._config.on_event is None:
            return
        try:
            self._config.on_event(event)
        except Exception:
            logger.exception("on_event raised on %r; ignored", event)

    def _shutdown(self) -> None:
        live = self._book.clear()
        if live and self._client.status == "running":
            try:
                self._client.cancel(live)
            except Exception as error:
                logger.warning("cancelling %d unfinished attempts failed: %r", len(live), error)
        self._fetcher.close()
        self._notices.close()
        self._submitter.close()
        if self._watch is not None:
            self._watch.close()
