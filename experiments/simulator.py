"""A discrete-event model (SimPy) of the library's run loop on N workers under preemption.

It reads like the run it imitates. The client places each step input (a scatter, its
copies, a registry record), Dask hands ready steps to idle workers, and a finished step's
result returns to the client, which places its decoys as the next step's inputs.
Preemption sources are Poisson processes; a preemption is an `interrupt()` of the
victim's process. What the library does then is modelled rule by rule:

- a step input lives on `copies` workers; it is lost when every holder is gone;
- a step running on a lost worker whose input survives is rerun by Dask, until it has
  been "suspicious" more than `allowed_failures` times (KilledWorker);
- a step whose input was lost, or that hit KilledWorker, is resubmitted from the
  registry at that step while it has attempts left (`max_attempts`); without a
  registry its task is reported failed;
- at most `max_in_flight` steps are unfinished at once (tasks are admitted lazily);
- a worker is replaced after its kind's replacement delay (None: not in this run);
- a preemption with notice lets the running step finish within the notice, takes no
  new step, and kills the worker when the notice ends.

Every cost is a named field of `RunCosts`, calibrated from measured runs.
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Any

import simpy

from experiments.costs import RunCosts
from experiments.durations import step_seconds
from experiments.sim_inputs import InputLedger, PlacedInput
from experiments.sim_spec import PreemptionSource, SimOutcome, SimSpec, Status


def simulate(spec: SimSpec, costs: RunCosts, seed: int) -> SimOutcome:
    """Run the model once; the same (spec, costs, seed) gives the same outcome."""
    return _Run(spec, costs, seed).run()


class _Job:
    __slots__ = ("attempts", "duration", "index", "input", "queued", "resolved", "running_on",
                 "step", "suspicious", "task", "token")

    def __init__(self, task: int, step: int, index: tuple[int, ...], duration: float) -> None:
        self.task, self.step, self.index, self.duration = task, step, index, duration
        self.attempts = 0
        self.suspicious = 0
        self.input: PlacedInput | None = None
        self.running_on: int | None = None
        self.resolved = False
        self.queued = False  # in a worker's queue, not yet started
        self.token = 0  # bumped whenever the job leaves the ready queue's view


class _Worker:
    __slots__ = ("alive", "current", "draining", "id", "process", "queue", "started", "wake")

    def __init__(self, worker_id: int) -> None:
        self.id = worker_id
        self.alive = True
        self.draining = False
        self.process: Any = None
        self.started = 0.0  # when its current step started
        self.current: _Job | None = None
        self.queue: deque[tuple[_Job, int]] = deque()  # steps Dask assigned to it
        self.wake: Any = None  # the event it waits on while idle


class _Run:
    def __init__(self, spec: SimSpec, costs: RunCosts, seed: int) -> None:
        self.spec, self.costs = spec, costs
        self.rng = random.Random(f"simulate:{seed}")
        self.env = simpy.Environment()
        self.backlog: deque[tuple[float, _Job, int]] = deque()  # queued behind busy workers
        self.idle: dict[int, _Worker] = {}
        self.workers: dict[int, _Worker] = {}
        self.live: list[_Worker] = []  # alive and taking steps
        self.next_worker = 0
        self.unresolved = 0
        self.admitted = 0
        self.failed_tasks: set[int] = set()
        self.delivered = 0
        self.kills = 0
        self.useful = 0.0
        self.wasted = 0.0
        self.inputs = InputLedger(spec.payload_bytes, spec.scatter, self.rng)
        self.waiting_to_place: list[_Job] = []  # a scatter waits for a worker to exist
        self.waiting_to_assign: list[_Job] = []
        self.finished = self.env.event()
        self.status: Status = "completed"
        self.origin = 0.0  # fault times count from the run start, as the harness counts them

    # -- the run --------------------------------------------------------------------

    def run(self) -> SimOutcome:
        for _ in range(self.spec.workers):
            self._add_worker()
        for source in self.spec.sources:
            if source.rate > 0 or source.times:
                self.env.process(self._preemptions(source))
        self.env.process(self._deadline())
        self.env.process(self._start())
        self.env.run(until=self.finished)
        makespan = self.env.now + (self.costs.end_gap if self.status != "hung" else 0.0)
        expected = self.spec.tasks * math.prod(self.spec.fanout)
        return SimOutcome(self.status, makespan, len(self.failed_tasks), self.delivered,
                          expected, self.kills, self.useful, self.wasted,
                          self.inputs.peak_held * self.spec.payload_bytes,
                          self.inputs.peak_replica_bytes)

    def _start(self) -> Any:
        yield self.env.timeout(self.costs.startup)
        self._admit()
        if self.unresolved == 0:
            self._finish()

    def _deadline(self) -> Any:
        yield self.env.timeout(self.spec.timeout)
        if not self.finished.triggered:
            self.status = "hung"
            self.finished.succeed()

    def _finish(self) -> None:
        if not self.finished.triggered:
            self.status = "failed" if self.failed_tasks else "completed"
            self.finished.succeed()

    # -- the client: admission, placement, results -------------------------------------

    def _admit(self) -> None:
        while self.admitted < self.spec.tasks and self.unresolved < self.spec.max_in_flight:
            task = self.admitted
            self.admitted += 1
            self._submit(self._job(task, 0, ()), delay=0.0)

    def _job(self, task: int, step: int, index: tuple[int, ...]) -> _Job:
        self.unresolved += 1
        duration = step_seconds(self.spec.duration, self.spec.duration_seed, f"t{task}", step,
                                index)
        return _Job(task, step, index, duration)

    def _submit(self, job: _Job, delay: float) -> None:
        """Place the job's input after `delay` (its placement), then queue it."""
        if delay <= 0:
            self._place(job)
            return
        self.env.timeout(delay).callbacks.append(lambda _: self._place(job))

    def _place(self, job: _Job) -> None:
        if job.resolved:
            return
        live = self.live
        if not live:
            self.waiting_to_place.append(job)
            return
        job.attempts += 1
        ids = [worker.id for worker in live]
        if job.step == 0 and job.attempts == 1:
            job.input = self.inputs.place_shared(ids)
        else:
            job.input = self.inputs.place(ids, self.spec.copies)
        job.input.jobs[job] = None
        self._enqueue(job, self.costs.dispatch)

    def _enqueue(self, job: _Job, delay: float) -> None:
        token = job.token
        self.env.timeout(delay).callbacks.append(
            lambda _: self._assign(job) if not job.resolved and job.token == token else None)

    def _assign(self, job: _Job) -> None:
        """Dask's choice: the least busy live holder of the input (any worker if none)."""
        placed = job.input
        candidates = [self.workers[h] for h in placed.holders] if placed is not None else []
        candidates = [w for w in candidates if w.alive and not w.draining] or self.live
        if not candidates:
            self.waiting_to_assign.append(job)
            return
        if len(candidates) > 8:
            candidates = self.rng.sample(candidates, 8)
        target = min(candidates, key=lambda w: len(w.queue) + (w.current is not None))
        busy = target.wake is None
        self._queue_on(target, job)
        if busy:  # an idle worker may steal it after `steal_after`
            self.backlog.append((self.env.now, job, job.token))
            if self.idle:
                self.env.timeout(self.costs.steal_after).callbacks.append(
                    lambda _: self._steal())

    def _queue_on(self, worker: _Worker, job: _Job) -> None:
        job.token += 1
        job.queued = True
        worker.queue.append((job, job.token))
        if worker.wake is not None:
            self._wake(worker)

    def _wake(self, worker: _Worker) -> None:
        event, worker.wake = worker.wake, None
        self.idle.pop(worker.id, None)
        if event is not None and not event.triggered:
            event.succeed()

    def _steal(self) -> None:
        """Work stealing: idle workers take steps queued behind busy ones for `steal_after`."""
        while self.idle and self.backlog:
            queued_at, job, token = self.backlog[0]
            if job.resolved or job.token != token or not job.queued:
                self.backlog.popleft()
                continue
            wait = queued_at + self.costs.steal_after - self.env.now
            if wait > 1e-12:
                self.env.timeout(wait).callbacks.append(lambda _: self._steal())
                return
            self.backlog.popleft()
            worker = next(iter(self.idle.values()))
            self._queue_on(worker, job)

    def _accept(self, job: _Job) -> None:
        """The client takes a step's result: its decoys become the next step's jobs."""
        if job.resolved:
            return
        self._resolve(job)
        self.useful += job.duration
        if job.step + 1 < self.spec.steps:
            for position in range(self.spec.fanout[job.step]):
                child = self._job(job.task, job.step + 1, (*job.index, position))
                self._submit(child, self.costs.placement)
        else:
            self.delivered += self.spec.fanout[job.step]
        self._admit()
        if self.unresolved == 0 and self.admitted == self.spec.tasks:
            self._finish()

    def _resolve(self, job: _Job) -> None:
        job.resolved = True
        job.token += 1
        self.unresolved -= 1
        if job.input is not None:
            job.input.jobs.pop(job, None)
            if not job.input.jobs:
                self.inputs.release(job.input)

    def _lost(self, job: _Job, cause: str) -> None:
        """The client sees a step fail: resubmit from the registry, or report the task."""
        if job.resolved:
            return
        job.token += 1
        if job.input is not None:
            job.input.jobs.pop(job, None)
            if not job.input.jobs and not job.input.lost:
                self.inputs.release(job.input)
            job.input = None
        if self.spec.registry is not None and job.attempts < self.spec.max_attempts:
            self._submit(job, self.costs.detection + self.costs.resubmit)
            return
        self.env.timeout(self.costs.detection).callbacks.append(
            lambda _: self._report_failed(job))

    def _report_failed(self, job: _Job) -> None:
        if job.resolved:
            return
        self.failed_tasks.add(job.task)
        self._resolve(job)
        self._admit()
        if self.unresolved == 0 and self.admitted == self.spec.tasks:
            self._finish()

    # -- the workers ----------------------------------------------------------------

    def _add_worker(self) -> None:
        worker = _Worker(self.next_worker)
        self.next_worker += 1
        self.workers[worker.id] = worker
        self.live.append(worker)
        worker.process = self.env.process(self._work(worker))
        self.inputs.join(worker.id, len(self.live))
        placing, self.waiting_to_place = self.waiting_to_place, []
        assigning, self.waiting_to_assign = self.waiting_to_assign, []
        for job in placing:
            self._place(job)
        for job in assigning:
            self._assign(job)

    def _work(self, worker: _Worker) -> Any:
        while worker.alive and not worker.draining:
            if not worker.queue:
                worker.wake = self.env.event()
                self.idle[worker.id] = worker
                self._steal()
                if worker.wake is not None:
                    try:
                        yield worker.wake
                    except simpy.Interrupt:
                        self.idle.pop(worker.id, None)
                        worker.wake = None
                        return
                continue
            job, token = worker.queue.popleft()
            if job.resolved or job.token != token:
                continue
            if job.input is not None and job.input.lost:
                continue  # its loss was already handled
            job.queued = False
            job.running_on = worker.id
            worker.current = job
            worker.started = self.env.now
            try:
                yield self.env.timeout(job.duration + self.costs.exec_overhead)
            except simpy.Interrupt:
                return  # the preemption handled this step
            job.running_on = None
            worker.current = None
            self.env.timeout(self.costs.return_latency).callbacks.append(
                self._returner(job, job.token))

    def _returner(self, job: _Job, token: int) -> Any:
        """The result reaches the client, unless the job moved on meanwhile."""
        return lambda _: self._accept(job) if job.token == token else None

    # -- preemptions ----------------------------------------------------------------

    def _preemptions(self, source: PreemptionSource) -> Any:
        fired = 0
        times = list(source.times) if source.times is not None else None
        now = 0.0
        while source.limit is None or fired < source.limit:
            if times is not None:
                if not times:
                    return
                at = times.pop(0) + self.origin
            else:
                at = now + self.rng.expovariate(source.rate)
            now = at
            if at > self.env.now:
                yield self.env.timeout(at - self.env.now)
            fired += 1
            if not self.live:
                continue
            victim = self.rng.choice(self.live)
            self.kills += 1
            if source.notice > 0:
                victim.draining = True
                self.live.remove(victim)
                for job, _ in victim.queue:  # Dask moves its queued steps elsewhere
                    self._enqueue(job, 0.0)
                victim.queue.clear()
                if victim.process.is_alive and victim.current is None:
                    victim.process.interrupt("drain")
                self.env.timeout(source.notice).callbacks.append(self._killer(victim, source))
            else:
                self._kill(victim, source)

    def _killer(self, worker: _Worker, source: PreemptionSource) -> Any:
        return lambda _: self._kill(worker, source)

    def _kill(self, worker: _Worker, source: PreemptionSource) -> None:
        if not worker.alive:
            return
        worker.alive = False
        self.idle.pop(worker.id, None)
        if worker in self.live:
            self.live.remove(worker)
        orphans = [job for job, token in worker.queue if job.token == token]
        worker.queue.clear()
        running = [worker.current] if worker.current is not None else []
        worker.current = None
        if worker.process.is_alive:
            worker.process.interrupt("kill")
        for job in running:
            self.wasted += self.env.now - worker.started
            job.running_on = None
            job.token += 1
        lost_inputs = self.inputs.leave(worker.id)
        delay = self.costs.detection
        for placed in lost_inputs:
            for job in list(placed.jobs):
                if job not in running:
                    self._later(delay, job, "lost-input")
        for job in orphans:  # queued there, input alive elsewhere: Dask reassigns it
            if job.input is None or not job.input.lost:
                self._enqueue(job, self.costs.reschedule)
        for job in running:
            if job.input is not None and job.input.lost:
                self._later(delay, job, "lost-input")
            else:
                job.suspicious += 1
                if job.suspicious > self.spec.allowed_failures:
                    self._later(delay, job, "killed-worker")
                else:
                    self._enqueue(job, self.costs.reschedule)
        if source.replacement is not None:
            self.env.timeout(source.replacement).callbacks.append(lambda _: self._add_worker())

    def _later(self, delay: float, job: _Job, cause: str) -> None:
        job.token += 1
        self.env.timeout(delay).callbacks.append(lambda _: self._lost(job, cause))

