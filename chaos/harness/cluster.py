"""`ChaosCluster`: a Dask cluster prepared for many chaos runs in a row.

It subscribes once to the probes' topic and, through a small scheduler plugin
(`chaos.harness.membership`), to worker arrivals and departures, and routes both to the run in
progress. Between runs it resets the cluster: it brings the worker count back (each
backend refills in its own way: `chaos.harness.backends`), waits for the scheduler to
forget every task of the previous run, and releases leftover keys if some stay. What
the harness tells the probes goes through `cluster.probes` (`chaos.harness.probe_messages`).

    ChaosCluster.local(3)                      # a LocalCluster in this process
    ChaosCluster.open("processes", 3)          # `dask scheduler` + 3 `dask worker`, TLS
    ChaosCluster.open("address", address=...)  # an existing cluster, through its nannies
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from distributed import Client, LocalCluster

from chaos.errors import ClusterError
from chaos.harness import processes, scheduler_calls
from chaos.harness.backends import AddressBackend, ClusterBackend, LocalBackend, open_backend
from chaos.harness.inflict import Victim
from chaos.harness.membership import PLUGIN_NAME, MembershipReporter
from chaos.harness.probe_messages import ProbeMessages
from chaos.probes import DEFAULT_TOPIC
from resilience.scheduler_watch import hearing_ended

logger = logging.getLogger(__name__)

# Seconds between a scheduler's SIGKILL and its replacement, in a campaign: shorter than
# the client's reconnection window (its `timeout`, 30 s), so the same client goes on.
SCHEDULER_RESTART_DELAY = 1.0
# Seconds between two looks at the fleet by the refill thread (backends that refill
# during runs); each look asks the scheduler for its workers.
REFILL_PERIOD = 0.5
RESULT_WAIT = 10.0  # seconds for a trivial task's result (settle's check); usually 10 ms


class RunListener(Protocol):
    """What a run in progress receives (the coordinator implements it)."""

    def on_worker_event(self, message: dict[str, Any]) -> None: ...

    def on_cluster_event(self, when: float, message: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class ClusterSnapshot:
    """The scheduler's view at one moment: live workers, task count, allowed failures,
    and (as a run starts: `ChaosCluster.settle`) whether Dask's work stealing runs."""

    workers: dict[str, Victim]
    n_tasks: int
    allowed_failures: int
    stealing: bool | None = None

    def worker_list(self) -> list[dict[str, Any]]:
        return [{"address": v.address, "pid": v.pid} for v in self.workers.values()]


class ChaosCluster:
    """A client (and the backend it came from) shared by many runs.

    Built from a backend (`open`, `local`), or from a client and optionally the
    LocalCluster it talks to. `local_signals` lets faults signal worker pids from this
    process; the backend decides it (True for `local` and `processes`).
    """

    def __init__(self, client: Client | None = None, cluster: Any = None, *,
                 backend: ClusterBackend | None = None, n_workers: int | None = None,
                 local_signals: bool | None = None, topic: str = DEFAULT_TOPIC,
                 owns_backend: bool = False) -> None:
        if backend is None:
            if client is None:
                raise ClusterError("ChaosCluster needs a client or a backend "
                                   "(ChaosCluster.open('local' | 'processes' | 'address')).")
            n = len(getattr(cluster, "worker_spec", ()) or ()) or None
            backend = (LocalBackend(client, cluster, n or 0) if isinstance(cluster, LocalCluster)
                       else AddressBackend.wrap(client))
        self.backend = backend
        self.client = backend.client
        self.cluster = cluster if cluster is not None else getattr(backend, "cluster", None)
        self.topic = topic
        self.membership_topic = f"{topic}-membership"
        self._lock = threading.Lock()
        self._listener: tuple[str, RunListener] | None = None
        self._members: dict[str, Victim] = {}
        self._owns_backend = owns_backend
        self._restarting: threading.Thread | None = None
        self._refiller: threading.Thread | None = None
        self._closing = threading.Event()
        self.probes = ProbeMessages(self.client, topic, self.live_workers)
        snapshot = self.refresh()
        if any(v.pid == os.getpid() for v in snapshot.workers.values()):
            raise ClusterError(
                "a worker runs inside this process (LocalCluster(processes=False)?); the harness "
                "kills worker processes, so use processes=True (workers with nannies)."
            )
        if n_workers is None:
            n_workers = backend.n_workers or len(snapshot.workers)
        self.n_workers = backend.n_workers = n_workers
        self.local_signals = backend.local_signals if local_signals is None else local_signals
        self._hook_scheduler()
        if backend.refills_during_runs:
            self._refiller = threading.Thread(target=self._refill, daemon=True,
                                              name="chaos-refill")
            self._refiller.start()

    def _hook_scheduler(self) -> None:
        """Subscribe to the probes' and membership topics; install the membership plugin.
        Done again on a new scheduler after a `scheduler-kill`."""
        self.client.subscribe_topic(self.topic, self._on_probe)
        self.client.subscribe_topic(self.membership_topic, self._on_membership)
        self.client.register_plugin(MembershipReporter(self.membership_topic), name=PLUGIN_NAME)

    @classmethod
    def open(cls, kind: str = "local", n_workers: int = 3, **options: Any) -> ChaosCluster:
        """A cluster from backend `kind` ("local", "processes", "address"), owned: `close()`
        stops everything the backend started. See `chaos.harness.backends.open_backend`."""
        backend = open_backend(kind, n_workers=n_workers, **options)
        try:
            return cls(backend=backend, n_workers=None if kind == "address" else n_workers,
                       owns_backend=True)
        except BaseException:
            backend.close()
            raise

    @classmethod
    def local(cls, n_workers: int = 3, *, threads_per_worker: int = 1,
              worker_ttl: str | None = None, **cluster_kwargs: Any) -> ChaosCluster:
        """A LocalCluster of nanny workers, owned (closed by `close()`); see
        `chaos.harness.backends.LocalBackend.start`."""
        return cls.open("local", n_workers, threads_per_worker=threads_per_worker,
                        worker_ttl=worker_ttl, **cluster_kwargs)

    def close(self) -> None:
        """Unsubscribe; stop the backend if this cluster owns it."""
        self._closing.set()
        if self._refiller is not None:
            self._refiller.join(timeout=30)
        if self._restarting is not None:
            self._restarting.join(timeout=30)
        for undo in (lambda: self.client.unregister_scheduler_plugin(PLUGIN_NAME),
                     lambda: self.client.unsubscribe_topic(self.topic),
                     lambda: self.client.unsubscribe_topic(self.membership_topic)):
            with contextlib.suppress(Exception):  # closing must not fail on a dead client
                undo()
        if self._owns_backend:
            self._owns_backend = False
            self.backend.close()

    def __enter__(self) -> ChaosCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ runs

    @property
    def scheduler_address(self) -> str | None:
        """Where probes running outside any worker connect to report."""
        scheduler = self.client.scheduler
        return getattr(scheduler, "address", None)

    def attach(self, run_id: str, listener: RunListener) -> None:
        with self._lock:
            if self._listener is not None:
                raise ClusterError(
                    f"run {self._listener[0]} is still attached; runs on one ChaosCluster go one "
                    "at a time (use one ChaosCluster per concurrent campaign)."
                )
            self._listener = (run_id, listener)

    def detach(self) -> None:
        with self._lock:
            self._listener = None

    def settle(self, *, n_workers: int | None = None, timeout: float = 30.0,
               stealing: bool = True) -> ClusterSnapshot:
        """Wait until `n_workers` workers run, no task is left and a trivial task's result
        reaches the client (`_check_results_arrive`); bounded by `timeout`. Then start the
        run's order afresh, with Dask's work stealing on or off (`stealing`: off for a
        replay whose original's stealer moved nothing, `chaos.harness.steal_order`).

        Tasks still there after 1 s are released on this client's behalf; if some stay
        3 s more (a stuck run of another client, say), every worker is restarted.
        """
        wanted = self.n_workers if n_workers is None else n_workers
        if self._restarting is not None:  # a scheduler-kill's replacement comes first
            self._restarting.join(timeout=timeout)
            self._restarting = None
        started = time.monotonic()
        deadline = started + timeout
        escalation = [(1.0, self._release_leftovers), (2.0, self._forget_orphans),
                      (4.0, self.hard_reset)]
        checked = reset_for_check = False
        self.restore_capacity()
        while True:
            snapshot = self.refresh()
            # A worker killed in the run before may still be registered for a moment
            # after its nanny started the next one: its removal would land in this run.
            ready = (len(snapshot.workers) >= wanted and snapshot.n_tasks == 0
                     and not self._registered_but_dead(snapshot))
            # A replacement started for a worker that then came back leaves a spare:
            # trimmed here, between runs, so every run starts on the same fleet. A worker
            # the backend already let go of may still be registered for a moment: an
            # exact fleet waits it out.
            if ready and (len(snapshot.workers) == wanted
                  or not (self.backend.trim(wanted) or self.backend.exact_fleet)):
                if not checked:  # then look again, until its task is gone too
                    checked = self._check_results_arrive(reset_first=not reset_for_check)
                    reset_for_check = not checked
                    continue
                stole = self.client.run_on_scheduler(scheduler_calls.start_run_order_afresh,
                                                     stealing)
                return dataclasses.replace(snapshot, stealing=stole)
            left = deadline - time.monotonic()
            if snapshot.n_tasks and escalation and time.monotonic() - started > escalation[0][0]:
                escalation.pop(0)[1]()
            if left <= 0:
                leftovers = self.client.run_on_scheduler(scheduler_calls.leftover_tasks)
                raise ClusterError(
                    f"after {timeout:g} s the cluster has {len(snapshot.workers)} of {wanted} "
                    f"workers and {snapshot.n_tasks} tasks left ({leftovers}); a worker did not "
                    "come back, or another client is using this cluster. Give the harness its "
                    "own cluster."
                )
            self.restore_capacity()
            time.sleep(0.01)

    def _check_results_arrive(self, reset_first: bool) -> bool:
        """Whether a trivial task's result reaches this client within RESULT_WAIT. A
        cluster can list its workers and run their tasks while its client hears of
        none: a nightly campaign saw it after a hard reset that took a minute, and
        every run after it hung. A first such silence gets a hard reset (False: look
        again); a second ends the campaign with the reason, rather than hang each run."""
        if (deaf := hearing_ended(self.client)) is not None:  # no reset mends the client
            raise ClusterError(f"this client no longer hears its scheduler: {deaf}. Start "
                               "the campaign again.")
        future = self.client.submit(int, 7, pure=False)  # a builtin: nothing to import
        try:
            if future.result(timeout=RESULT_WAIT) == 7:
                return True
        except Exception as error:  # TimeoutError, or whatever the cluster says
            failure = error
        else:
            failure = ValueError("a wrong result")
        finally:
            future.release()
        if not reset_first:
            raise ClusterError(
                f"this client got no result of a trivial task within {RESULT_WAIT:g} s "
                f"({failure!r}), even after a hard reset: its cluster runs tasks but does "
                "not report them. Start the campaign again on a fresh cluster.")
        self.hard_reset()
        return False

    def _registered_but_dead(self, snapshot: ClusterSnapshot) -> list[str]:
        """Workers the scheduler still lists whose process is gone (seen from this host
        only: `local_signals` backends)."""
        if not self.local_signals:
            return []
        return [address for address, victim in snapshot.workers.items()
                if victim.pid is not None and processes.settled(victim.pid, "gone")]

    def _release_leftovers(self) -> None:
        self.client.run_on_scheduler(scheduler_calls.release_client_keys, self.client.id)

    def _forget_orphans(self) -> None:
        # A scatter racing a worker's removal can leave a task no client wants, which
        # Scheduler.restart then refuses to clear (`assert not self.tasks`).
        self.client.run_on_scheduler(scheduler_calls.forget_orphans)

    def hard_reset(self, timeout: float = 60.0) -> None:
        """Restart every worker and drop all tasks: the way out when a run's thread is stuck.

        Dask refuses to restart while tasks no client wants remain; `settle` then ends
        with a ClusterError that lists them.
        """
        with contextlib.suppress(Exception):
            self.client.restart(timeout=timeout, wait_for_workers=False)
        self.restore_capacity()

    def restore_capacity(self) -> int:
        """Refill the fleet after workers left for good, the backend's way (its `refill`);
        returns how many replacements were started."""
        return self.backend.restore_capacity(self.n_workers)

    def replace_departed(self) -> int:
        """The refill's hook (`chaos.harness.refill.ReplacesWorkers`): during a run, start
        replacements for workers that left for good; returns how many were started."""
        return self.backend.refill_during_run(self.n_workers)

    def _refill(self) -> None:
        """The autoscaler of backends that refill during runs: a scheduler kill takes
        every worker with it, and a run waits for their replacements."""
        while not self._closing.wait(REFILL_PERIOD):
            with contextlib.suppress(Exception):  # a scheduler restarting: next time
                self.backend.refill_during_run(self.n_workers)

    def kill_scheduler(self, restart_after: float | None = SCHEDULER_RESTART_DELAY
                       ) -> tuple[int | None, str | None]:
        """SIGKILL the scheduler (backends that own it); start a new one on the same
        address `restart_after` seconds later, in the background (None: never)."""
        pid, error = self.backend.kill_scheduler()
        if pid is not None and restart_after is not None:
            self._restarting = threading.Thread(target=self._restart_scheduler,
                                                args=(restart_after,), daemon=True,
                                                name="chaos-scheduler-restart")
            self._restarting.start()
        return pid, error

    def _restart_scheduler(self, delay: float) -> None:
        time.sleep(delay)
        try:
            self.backend.restart_scheduler(timeout=30)
            self._hook_scheduler()
        except ClusterError as error:  # settle() then says what is missing; the log why
            logger.warning("the scheduler did not come back: %s", error)

    def refresh(self) -> ClusterSnapshot:
        """Ask the scheduler for its workers (with pids and nannies) and task count."""
        data = self.client.run_on_scheduler(scheduler_calls.scheduler_snapshot)
        members = {address: Victim(address, info["pid"], info["nanny"])
                   for address, info in data["workers"].items()}
        with self._lock:
            self._members = dict(members)
        return ClusterSnapshot(members, data["n_tasks"], data["allowed_failures"])

    def live_workers(self) -> dict[str, Victim]:
        """The workers alive as far as membership events tell, pids filled in."""
        with self._lock:
            members = dict(self._members)
        if any(v.pid is None for v in members.values()):
            members = self.refresh().workers
        return members

    def set_allowed_failures(self, value: int) -> None:
        """Change the live scheduler's allowed-failures (read from config only at start)."""
        self.client.run_on_scheduler(scheduler_calls.set_allowed_failures, value)

    def input_holders(self, key: str) -> list[str]:
        """Workers holding, in memory, any dependency (input) of task `key`."""
        return list(self.client.run_on_scheduler(scheduler_calls.dependency_holders, key,
                                                 callback_timeout=scheduler_calls.CALL_TIMEOUT))

    # ------------------------------------------------------------------ event loop side

    def _on_probe(self, event: tuple[float, Any]) -> None:
        _, message = event
        current = self._listener
        if current is None or not isinstance(message, dict) or message.get("run_id") != current[0]:
            return
        message = dict(message)
        if message.get("type") == "flush":
            message["token"] = f"{message['token']}:{message.get('worker')}"
        current[1].on_worker_event(message)

    def _on_membership(self, event: tuple[float, Any]) -> None:
        _, message = event
        if not isinstance(message, dict):
            return
        action, address = message.get("action"), message.get("worker")
        if action in ("add-worker", "remove-worker") and isinstance(address, str):
            with self._lock:
                if action == "remove-worker":
                    self._members.pop(address, None)
                else:
                    self._members[address] = Victim(address, message.get("pid"),
                                                    message.get("nanny"))
        elif action not in ("scatter-placed", "step-stolen"):
            return
        current = self._listener
        if current is not None:
            current[1].on_cluster_event(message.get("time", time.time()), dict(message))
