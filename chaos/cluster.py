"""`ChaosCluster`: a Dask cluster prepared for many chaos runs in a row.

It subscribes once to the probes' topic and, through a small scheduler plugin
(`chaos.membership`), to worker arrivals and departures, and routes both to the run in
progress. Between runs it resets the cluster: it brings the worker count back
(re-creating LocalCluster workers that a `sigterm` or `retire` closed for good), waits
for the scheduler to forget every task of the previous run, and releases leftover keys
if some stay. It can be built on any `distributed.Client` whose scheduler and workers
can import `chaos`; `ChaosCluster.local()` builds a LocalCluster tuned for fast worker
replacement.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import dask
from distributed import Client, LocalCluster
from distributed.core import Status

from chaos.errors import ClusterError
from chaos.inflict import Victim
from chaos.membership import PLUGIN_NAME, MembershipReporter
from chaos.probes import DEFAULT_TOPIC, flush_marker, release_hold, release_run


class RunListener(Protocol):
    """What a run in progress receives (the coordinator implements it)."""

    def on_worker_event(self, message: dict[str, Any]) -> None: ...

    def on_cluster_event(self, when: float, message: dict[str, Any]) -> None: ...

    def flushed(self, token: str) -> bool: ...


@dataclass(frozen=True)
class ClusterSnapshot:
    """The scheduler's view at one moment: live workers, task count, allowed failures."""

    workers: dict[str, Victim]
    n_tasks: int
    allowed_failures: int

    def worker_list(self) -> list[dict[str, Any]]:
        return [{"address": v.address, "pid": v.pid} for v in self.workers.values()]


class ChaosCluster:
    """A client (and optionally the cluster object it talks to) shared by many runs.

    `local_signals` lets faults signal worker pids from this process; it defaults to
    True for a LocalCluster, whose workers run on this host.
    """

    def __init__(self, client: Client, cluster: Any = None, *, n_workers: int | None = None,
                 local_signals: bool | None = None, topic: str = DEFAULT_TOPIC) -> None:
        self.client = client
        self.cluster = cluster
        self.topic = topic
        self.membership_topic = f"{topic}-membership"
        self._lock = threading.Lock()
        self._listener: tuple[str, RunListener] | None = None
        self._members: dict[str, Victim] = {}
        self._owned: list[Any] = []
        snapshot = self.refresh()
        if any(v.pid == os.getpid() for v in snapshot.workers.values()):
            raise ClusterError(
                "a worker runs inside this process (LocalCluster(processes=False)?); the harness "
                "kills worker processes, so use processes=True (workers with nannies)."
            )
        if n_workers is None:
            spec = getattr(cluster, "worker_spec", None)
            n_workers = len(spec) if spec else len(snapshot.workers)
        self.n_workers = n_workers
        self.local_signals = isinstance(cluster, LocalCluster) if local_signals is None else (
            local_signals)
        client.subscribe_topic(topic, self._on_probe)
        client.subscribe_topic(self.membership_topic, self._on_membership)
        client.register_plugin(MembershipReporter(self.membership_topic), name=PLUGIN_NAME)

    @classmethod
    def local(cls, n_workers: int = 3, *, threads_per_worker: int = 1,
              worker_ttl: str | None = None, **cluster_kwargs: Any) -> ChaosCluster:
        """A LocalCluster of nanny workers, owned (closed by `close()`).

        Workers are started with the `forkserver` method: a killed worker is replaced
        in about 0.1 s instead of 0.4 s with `spawn`, which is most of a run's cost.
        `worker_ttl` (e.g. "5s") makes a frozen worker visible to the scheduler sooner.
        """
        settings: dict[str, Any] = {"distributed.worker.multiprocessing-method": "forkserver"}
        if worker_ttl is not None:
            settings["distributed.scheduler.worker-ttl"] = worker_ttl
        config = dask.config.set(settings)
        try:
            with warnings.catch_warnings():
                # The scheduler's HTTP server falls back to a free port when 8787 is taken.
                warnings.filterwarnings("ignore", "Port 8787 is already in use")
                cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                       processes=True, dashboard_address=None, **cluster_kwargs)
        except BaseException:
            config.__exit__(None, None, None)
            raise
        try:
            client = Client(cluster)
            chaos_cluster = cls(client, cluster, n_workers=n_workers)
        except BaseException:
            cluster.close()
            config.__exit__(None, None, None)
            raise
        chaos_cluster._owned = [client, cluster, config]
        return chaos_cluster

    def close(self) -> None:
        """Unsubscribe; close the client and cluster if `local()` made them."""
        for undo in (lambda: self.client.unregister_scheduler_plugin(PLUGIN_NAME),
                     lambda: self.client.unsubscribe_topic(self.topic),
                     lambda: self.client.unsubscribe_topic(self.membership_topic)):
            with contextlib.suppress(Exception):  # closing must not fail on a dead client
                undo()
        owned, self._owned = self._owned, []
        for item in owned:
            if hasattr(item, "close"):
                with contextlib.suppress(Exception):
                    item.close()
            else:
                item.__exit__(None, None, None)

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

    def settle(self, *, n_workers: int | None = None, timeout: float = 30.0) -> ClusterSnapshot:
        """Wait until `n_workers` workers run and no task is left; bounded by `timeout`.

        Tasks still there after 1 s are released on this client's behalf; if some stay
        3 s more (a stuck run of another client, say), every worker is restarted.
        """
        wanted = self.n_workers if n_workers is None else n_workers
        started = time.monotonic()
        deadline = started + timeout
        escalation = [(1.0, self._release_leftovers), (2.0, self._forget_orphans),
                      (4.0, self.hard_reset)]
        self.restore_capacity()
        while True:
            snapshot = self.refresh()
            if len(snapshot.workers) >= wanted and snapshot.n_tasks == 0:
                return snapshot
            left = deadline - time.monotonic()
            if snapshot.n_tasks and escalation and time.monotonic() - started > escalation[0][0]:
                escalation.pop(0)[1]()
            if left <= 0:
                leftovers = self.client.run_on_scheduler(_leftover_tasks)
                raise ClusterError(
                    f"after {timeout:g} s the cluster has {len(snapshot.workers)} of {wanted} "
                    f"workers and {snapshot.n_tasks} tasks left ({leftovers}); a worker did not "
                    "come back, or another client is using this cluster. Give the harness its "
                    "own cluster."
                )
            self.restore_capacity()
            time.sleep(0.01)

    def _release_leftovers(self) -> None:
        self.client.run_on_scheduler(_release_client_keys, self.client.id)

    def _forget_orphans(self) -> None:
        # A scatter racing a worker's removal can leave a task no client wants, which
        # Scheduler.restart then refuses to clear (`assert not self.tasks`).
        self.client.run_on_scheduler(_forget_orphans)

    def hard_reset(self, timeout: float = 60.0) -> None:
        """Restart every worker and drop all tasks: the way out when a run's thread is stuck.

        Dask refuses to restart while tasks no client wants remain; `settle` then ends
        with a ClusterError that lists them.
        """
        with contextlib.suppress(Exception):
            self.client.restart(timeout=timeout, wait_for_workers=False)
        self.restore_capacity()

    def restore_capacity(self) -> None:
        """Start replacements for LocalCluster workers leaving for good (sigterm, retire).

        A worker killed abruptly is restarted by its nanny; a nanny that closes is not.
        Its replacement is started as soon as it begins to close, under a new name,
        because a closing nanny lingers for about 2 s (its worker process waits for a
        thread). On a cluster the harness does not own, replacements are the
        deployment's business.
        """
        cluster = self.cluster
        workers = getattr(cluster, "workers", None)
        spec = getattr(cluster, "worker_spec", None)
        if workers is None or spec is None:
            return
        for name, worker in list(workers.items()):
            if getattr(worker, "status", None) in _GONE:
                workers.pop(name, None)
                spec.pop(name, None)
        leaving = {name for name, worker in workers.items()
                   if getattr(worker, "status", None) in _LEAVING}
        missing = self.n_workers - len(set(spec) - leaving)
        for _ in range(max(0, missing)):
            spec.update(cluster.new_worker_spec())
        if missing > 0 or not set(spec) <= set(workers):
            cluster.scale(len(spec))  # same size: only starts the workers not running yet

    def refresh(self) -> ClusterSnapshot:
        """Ask the scheduler for its workers (with pids and nannies) and task count."""
        data = self.client.run_on_scheduler(_scheduler_snapshot)
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
        self.client.run_on_scheduler(_set_allowed_failures, value)

    def input_holders(self, key: str) -> list[str]:
        """Workers holding, in memory, any dependency (input) of task `key`."""
        return list(self.client.run_on_scheduler(_dependency_holders, key))

    def release_hold(self, address: str | None, hold_id: str, decisions: dict[str, Any], *,
                     wait: bool = False) -> None:
        """Let a held probe on `address` go on.

        By default fire-and-forget: the worker may be frozen, and the message then waits
        for SIGCONT. With `wait`, return once the worker let the probe go (bounded): a
        graceful shutdown blocks the worker's event loop while it waits for running tasks,
        so the release must have landed before such a shutdown starts.
        """
        client = self.client

        async def send() -> None:
            with contextlib.suppress(Exception):  # a dead or frozen worker needs no release
                if address is None:  # a probe outside any worker waits on a Dask Event
                    await client.scheduler.event_set(name=hold_id)
                    return
                await asyncio.wait_for(
                    client._run(release_hold, hold_id, decisions, workers=[address],
                                on_error="ignore"),
                    timeout=5 if wait else 60,
                )

        if wait:
            client.sync(send)
        elif client.loop is not None:
            client.loop.add_callback(send)

    def flush(self, run_id: str, listener: RunListener, *, exclude: Callable[[str], bool],
              timeout: float = 2.0) -> bool:
        """Wait until every live worker's earlier probe reports have reached `listener`."""
        token = uuid.uuid4().hex
        workers = [a for a in self.live_workers() if not exclude(a)]
        if not workers:
            return True
        try:
            answered = self.client.sync(self.client._run, flush_marker, self.topic, run_id, token,
                                        workers=workers, on_error="ignore",
                                        callback_timeout=timeout)
        except Exception:  # a worker that cannot answer has nothing to flush
            return False
        workers = list(answered)  # a worker that died meanwhile has nothing more to send
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(listener.flushed(f"{token}:{a}") for a in workers):
                return True
            time.sleep(0.002)
        return False

    def release_run(self, run_id: str, *, exclude: Callable[[str], bool],
                    timeout: float = 2.0) -> None:
        """Tell every live worker the run is over: no probe of it may hold any more."""
        workers = [a for a in self.live_workers() if not exclude(a)]
        if not workers:
            return
        # A worker that cannot answer holds nothing for long (its probes time out).
        with contextlib.suppress(Exception):
            self.client.sync(self.client._run, release_run, run_id, workers=workers,
                             on_error="ignore", callback_timeout=timeout)

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
        if action not in ("add-worker", "remove-worker") or not isinstance(address, str):
            return
        with self._lock:
            if action == "remove-worker":
                self._members.pop(address, None)
            else:
                self._members[address] = Victim(address, message.get("pid"), message.get("nanny"))
        current = self._listener
        if current is not None:
            current[1].on_cluster_event(message.get("time", time.time()), dict(message))


# ---------------------------------------------------------------------------- scheduler side

_GONE = (Status.closed, Status.failed)
_LEAVING = (Status.closing, Status.closing_gracefully, *_GONE)


def _scheduler_snapshot(dask_scheduler: Any) -> dict[str, Any]:
    return {
        "workers": {address: {"pid": ws.pid, "nanny": ws.nanny}
                    for address, ws in dask_scheduler.workers.items()
                    if ws.status == Status.running},
        "n_tasks": len(dask_scheduler.tasks),
        "allowed_failures": dask_scheduler.allowed_failures,
    }


# Client.run_on_scheduler passes arguments positionally: `dask_scheduler` comes last.


def _dependency_holders(key: str, dask_scheduler: Any = None) -> list[str]:
    task = dask_scheduler.tasks.get(key)
    if task is None:
        return []
    return sorted({ws.address for dep in task.dependencies for ws in dep.who_has or ()})


def _set_allowed_failures(value: int, dask_scheduler: Any = None) -> None:
    dask_scheduler.allowed_failures = value


def _leftover_tasks(dask_scheduler: Any = None) -> list[str]:
    # who_wants, who_has and dependents may be None (empty) in recent distributed.
    return [f"{key} ({ts.state}, wanted by {sorted(c.client_key for c in ts.who_wants or ())}, "
            f"held by {sorted(ws.address for ws in ts.who_has or ())}, "
            f"{len(ts.dependents or ())} dependents, {len(ts.dependencies or ())} dependencies)"
            for key, ts in list(dask_scheduler.tasks.items())[:5]]


def _forget_orphans(dask_scheduler: Any = None) -> list[str]:
    """Forget tasks that no client wants and nothing depends on (between runs only)."""
    orphans = [key for key, ts in dask_scheduler.tasks.items()
               if not ts.who_wants and not ts.dependents]
    if orphans:
        dask_scheduler.transitions({key: "forgotten" for key in orphans},
                                   stimulus_id=f"chaos-forget-orphans-{time.time()}")
    return [str(key) for key in orphans]


def _release_client_keys(client_id: str, dask_scheduler: Any = None) -> int:
    state = dask_scheduler.clients.get(client_id)
    if state is None:
        return 0
    keys = [ts.key for ts in state.wants_what]
    dask_scheduler.client_releases_keys(keys=keys, client=client_id,
                                        stimulus_id=f"chaos-reset-{time.time()}")
    return len(keys)
