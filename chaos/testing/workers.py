"""The workers a check runs on: attempts pinned to a worker, SIGKILLs, and bounded waits.

An attempt is pinned (`workers=[address]`, `allow_other_workers=False`), so that when
its worker is killed Dask does not quietly rerun it elsewhere before the check has
looked at what the killed attempt left behind: the task waits for a worker that will
never come back, and the check cancels it. Attempts report their start and end with
`Worker.log_event`, which reaches this client in a few milliseconds, so a kill can
be aimed at a moment inside the protocol itself rather than inside Dask's queue.

The kill is a real SIGKILL of the worker process and its children, sent by the
harness's `Inflictor` (from this process on a LocalCluster, through the worker's
nanny elsewhere); the nanny then starts a replacement, which the check waits for
before it returns, so a shared cluster is left as it was found.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaos.testing.attempts import AttemptResult, AttemptSpec, run_attempt
from chaos.testing.errors import CheckError

if TYPE_CHECKING:
    from distributed import Client, Future

REPLACEMENT_TIMEOUT = 30.0  # seconds for a nanny to bring a killed worker back
SCHEDULER_TIMEOUT = 10.0  # seconds for the scheduler to answer or to notice a death
JOIN_TIMEOUT = 10.0  # seconds a check waits for a second worker before it gives up
OWN_WORKERS = 2


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    nanny: str | None


@contextlib.contextmanager
def own_client(n_workers: int = OWN_WORKERS) -> Iterator[Client]:
    """A LocalCluster of `n_workers` nanny workers of one thread, closed on the way out.

    Its workers are started by multiprocessing's forkserver, as the harness's
    `ChaosCluster.local` does: a killed worker is back in about 0.1 s instead of 0.7 s
    (and several seconds on a loaded machine) with spawn. And a LocalCluster closes a
    nanny for good when, `lost-worker-timeout` (15 s) after one of its workers died, no
    worker of that name is registered: with kills every few seconds, that moment falls
    in some replacement's start-up now and then, and the cluster shrinks (the harness's
    `LOST_WORKER_TIMEOUT`). Dask reads both settings when it needs them, so they are held
    while the cluster lives.
    """
    import dask
    from distributed import Client, LocalCluster

    from chaos.harness.backends.base import LOST_WORKER_TIMEOUT

    settings = {"distributed.worker.multiprocessing-method": "forkserver",
                "distributed.deploy.lost-worker-timeout": LOST_WORKER_TIMEOUT}
    with dask.config.set(settings), \
            LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                         dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(n_workers, timeout=REPLACEMENT_TIMEOUT)
        yield client


@contextlib.contextmanager
def dask_quiet() -> Iterator[None]:
    """Dask's own logging at CRITICAL while a check runs: the kills are on purpose, and
    their "worker died" and CommClosedError lines would bury the report."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _worker_pids(dask_scheduler: Any) -> list[int | None]:
    return [worker.pid for worker in dask_scheduler.workers.values()]


def _worker_pid(address: str, dask_scheduler: Any) -> int | None:
    worker = dask_scheduler.workers.get(address)
    return worker.pid if worker is not None else None


class WorkerPool:
    """The caller's cluster as the check uses it; `close()` leaves it as it was found."""

    def __init__(self, client: Client, *, need_nannies: bool) -> None:
        self.client = client
        self.topic = f"chaos-testing-{uuid.uuid4().hex[:12]}"
        self._seen: dict[tuple[str, str], threading.Event] = {}
        self._started_at: dict[str, float] = {}  # attempt -> the worker's clock at its start
        self._lock = threading.Lock()
        self._inflictor: Any = None
        self._pids: dict[str, int | None] = {}  # workers aimed at, and their pids
        self.expected = self._restore_local_nannies()
        found = self.wait_for(self.expected, REPLACEMENT_TIMEOUT) if self.expected else (
            self.workers())
        if len(found) < 2:  # a worker killed by someone else may be on its way back
            with contextlib.suppress(CheckError):
                found = self.wait_for(2, JOIN_TIMEOUT)
        self.expected = max(self.expected, len(found))
        if self.expected < 2:
            raise CheckError(
                f"the cluster has {self.expected} worker(s); the check compares runs on two "
                "different workers, so it needs at least 2: use LocalCluster(n_workers=2, "
                "processes=True), or leave client=None for a cluster of its own."
            )
        if need_nannies and any(info.nanny is None for info in found.values()):
            raise CheckError(
                "some workers have no nanny, so a killed worker would not come back: start "
                "them with nannies (LocalCluster(processes=True), `dask worker --nanny`), or "
                "pass kills=0 to skip the kill phase."
            )
        if os.getpid() in client.run_on_scheduler(_worker_pids):
            raise CheckError(
                "a worker runs inside this process (LocalCluster(processes=False)?): the "
                "check would change this process's working directory and state, and a kill "
                "would end it. Use workers in processes of their own: "
                "LocalCluster(processes=True)."
            )
        client.subscribe_topic(self.topic, self._on_event)

    def close(self) -> None:
        try:
            self.wait_for_all(REPLACEMENT_TIMEOUT)
        finally:
            with contextlib.suppress(Exception):  # the client may be closing already
                self.client.unsubscribe_topic(self.topic)

    # ------------------------------------------------------------------ workers

    def workers(self) -> dict[str, WorkerInfo]:
        """The live workers, asked of the scheduler now."""
        table = self.client.scheduler_info(n_workers=-1)["workers"]
        return {address: WorkerInfo(address, info.get("nanny"))
                for address, info in sorted(table.items())}

    def wait_for_all(self, timeout: float) -> None:
        """Until as many workers are up as when the check began (killed ones replaced)."""
        deadline = time.monotonic() + timeout
        while len(self.workers()) < self.expected:
            self._restore_local_nannies()
            if time.monotonic() > deadline:
                raise CheckError(
                    f"only {len(self.workers())} of {self.expected} workers were back "
                    f"{timeout:g} s after the last kill: the nannies did not replace the "
                    "killed workers (is the machine out of memory?)."
                )
            time.sleep(0.02)

    def wait_for(self, count: int, timeout: float) -> dict[str, WorkerInfo]:
        """The live workers, once there are at least `count` of them."""
        deadline = time.monotonic() + timeout
        while len(live := self.workers()) < count:
            self._restore_local_nannies()
            if time.monotonic() > deadline:
                raise CheckError(f"{len(live)} worker(s) alive {timeout:g} s after a kill; "
                                 f"the check needs {count}: the nannies did not replace them.")
            time.sleep(0.02)
        return live

    def aim(self, worker: WorkerInfo) -> None:
        """Get ready to kill `worker`, so that `kill` is only the signal: its pid is the
        scheduler's WorkerState.pid, asked for now (a replacement is a new process)."""
        if self._inflictor is None:
            from distributed import LocalCluster

            from chaos.harness import Inflictor

            local = isinstance(getattr(self.client, "cluster", None), LocalCluster)
            self._inflictor = Inflictor(self.client, local_signals=local,
                                        land_timeout=SCHEDULER_TIMEOUT)
        self._pids[worker.address] = self.client.run_on_scheduler(_worker_pid, worker.address)

    def kill(self, worker: WorkerInfo) -> str | None:
        """SIGKILL `worker`'s process; returns once it is gone (None) or why it is not known."""
        from chaos.harness import Victim

        if worker.address not in self._pids:
            self.aim(worker)
        victim = Victim(worker.address, self._pids.pop(worker.address), worker.nanny)
        landing = self._inflictor.inflict("sigkill", victim)
        if landing.landed_at is None:
            return landing.error or "the kill was not confirmed"
        deadline = time.monotonic() + SCHEDULER_TIMEOUT
        while worker.address in self.workers() and time.monotonic() < deadline:
            time.sleep(0.005)  # so that the next choice of a worker does not pick the dead one
        return None

    def ask(self, worker: str, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` run as a task on `worker`, bounded in time."""
        future = self.client.submit(function, *args, workers=[worker], pure=False)
        try:
            return future.result(timeout=SCHEDULER_TIMEOUT)
        except TimeoutError:
            raise CheckError(f"worker {worker} did not answer within {SCHEDULER_TIMEOUT:g} s; "
                             "is it frozen, or busy with another client's task?") from None
        finally:
            future.release()

    # ------------------------------------------------------------------ attempts

    def submit(self, spec: AttemptSpec, worker: str | None) -> Future[AttemptResult]:
        return self.client.submit(
            run_attempt, spec, key=f"preemption-check-{spec.attempt_id}", pure=False,
            workers=None if worker is None else [worker], allow_other_workers=False,
        )

    def results(self, futures: list[Future[AttemptResult]], timeout: float
                ) -> list[AttemptResult | str]:
        """Each attempt's result, or why there is none; never waits past `timeout`."""
        from distributed import wait

        with contextlib.suppress(TimeoutError):
            wait(futures, timeout=timeout)
        found: list[AttemptResult | str] = []
        for future in futures:
            if future.status == "finished":
                found.append(future.result())
            elif future.status == "error":
                error = future.exception()
                found.append(f"the attempt failed on the worker: {type(error).__name__}: {error}")
            else:
                found.append(f"the step did not finish within {timeout:g} s")
                self._free_worker_of(future)
            future.release()
        return found

    def started(self, attempt_id: str, future: Future[AttemptResult], timeout: float) -> bool:
        """Whether the attempt reported its start within `timeout` (False as soon as it is
        over without starting its protocol, e.g. when the protocol could not be loaded)."""
        deadline = time.monotonic() + timeout
        started = self._event(attempt_id, "start")
        while not started.wait(0.05):
            if future.done() or time.monotonic() > deadline:
                return started.is_set()
        return True

    def running_for(self, attempt_id: str) -> float:
        """Seconds since the attempt's protocol started, by the worker's clock: the start
        report reaches us late on a loaded machine, and a kill aimed from its arrival
        would land late. (Clocks of other machines may differ: never below 0.)"""
        started_at = self._started_at.get(attempt_id)
        return 0.0 if started_at is None else max(0.0, time.time() - started_at)

    def ended(self, attempt_id: str, timeout: float = 0.0) -> bool:
        return self._event(attempt_id, "end").wait(timeout)

    # ------------------------------------------------------------------ internals

    def _restore_local_nannies(self) -> int:
        """For a LocalCluster in this process: start again the nannies it closed for good
        (see `own_client`), and return how many workers it should have (0: not known)."""
        cluster = getattr(self.client, "cluster", None)
        spec = getattr(cluster, "worker_spec", None)
        if cluster is None or not spec:
            return 0
        if set(spec) - set(getattr(cluster, "workers", {})):
            cluster.scale(len(spec))  # same size: starts only the nannies that are missing
        return len(spec)

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        if "at" in message:
            self._started_at[message["attempt"]] = message["at"]
        self._event(message["attempt"], message["event"]).set()

    def _event(self, attempt_id: str, name: str) -> threading.Event:
        with self._lock:
            return self._seen.setdefault((attempt_id, name), threading.Event())

    def _free_worker_of(self, future: Future[AttemptResult]) -> None:
        # A thread running a hung protocol cannot be stopped: its worker is killed (and
        # replaced by its nanny) so that it does not hold the next attempts.
        def holder(key: str, dask_scheduler: Any) -> str | None:
            task = dask_scheduler.tasks.get(key)
            return task.processing_on.address if task and task.processing_on else None

        address = self.client.run_on_scheduler(holder, future.key)
        future.cancel()
        worker = self.workers().get(address) if address else None
        if worker is not None:
            self.kill(worker)
