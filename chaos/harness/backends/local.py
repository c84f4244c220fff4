"""The `local` backend: a LocalCluster of nanny workers inside the harness's process.

Its workers run on this host, so faults signal their pids straight from here. The
nannies live in this process: a preemption signals the worker process (and its
children), not the nanny. The scheduler lives here too, so it cannot be killed.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import warnings
from typing import Any, ClassVar

import dask
from distributed import Client, LocalCluster, Nanny
from distributed.core import Status

from chaos.harness.backends.base import LOST_WORKER_TIMEOUT, ClosingClient, ClusterBackend
from chaos.harness.processes import process_tree

# Fixed worker ports come from below the ephemeral range (outgoing connections take
# ports there), with five digits so that addresses sort as their ports do.
PORTS_FROM, PORTS_BELOW = 10000, 32768
PORTS_PER_WORKER = 3  # room for replacements started while a leaving worker lingers

# Nanny states of a LocalCluster worker that has left, or is leaving, for good.
_GONE = (Status.closed, Status.failed)
_LEAVING = (Status.closing, Status.closing_gracefully, *_GONE)


def worker_ports(n_workers: int, *, tries: int = 50) -> list[int]:
    """A block of free ports for `n_workers` workers to try in order, then 0 (any port):
    each new worker takes the first one free.

    Drawn at random (two clusters on one host rarely meet), and checked free; after
    `tries` taken blocks, [0]: any port, as Dask's default."""
    count = n_workers * PORTS_PER_WORKER
    draw = random.Random()
    for _ in range(tries):
        base = draw.randrange(PORTS_FROM, PORTS_BELOW - count)
        block = list(range(base, base + count))
        if all(_free(port) for port in block):
            return [*block, 0]
    return [0]


class HomingNanny(Nanny):
    """A nanny that restarts its worker at the port the worker first took.

    Dask's nanny starts each worker process on the first free port of its list, so a
    restarted worker would take a lower port that a worker gone for good had freed (a
    CI run saw it): its own port is put first once it is known."""

    async def instantiate(self) -> Status:
        status = await super().instantiate()
        process, address = self.process, self.worker_address
        ports = process.worker_kwargs.get("port") if process is not None else None
        if process is not None and address and isinstance(ports, list):
            own = int(address.rsplit(":", 1)[1])
            process.worker_kwargs["port"] = [own, *(p for p in ports if p != own)]
        return status


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


class LocalBackend(ClusterBackend):
    """A LocalCluster (owned when built by `start`, else only refilled)."""

    name: ClassVar[str] = "local"
    refill: ClassVar[str] = ("the harness starts a LocalCluster worker as soon as one begins "
                             "to leave for good")
    exact_fleet: ClassVar[bool] = True

    def __init__(self, client: Client, cluster: LocalCluster | None, n_workers: int, *,
                 owned: list[Any] | None = None) -> None:
        self.client = client
        self.cluster = cluster
        self.n_workers = n_workers
        self.local_signals = True
        self._owned = owned or []
        self._capacity_lock = threading.Lock()  # the refill's timers and settle() may call at once

    @classmethod
    def start(cls, n_workers: int = 3, *, threads_per_worker: int = 1,
              worker_ttl: str | None = None, **cluster_kwargs: Any) -> LocalBackend:
        """A LocalCluster of nanny workers, started with the `forkserver` method: a killed
        worker is replaced in about 0.1 s instead of 0.4 s with `spawn`, which is most of
        a run's cost. `worker_ttl` (e.g. "5s") makes a frozen worker visible sooner.

        The workers take fixed ports (`worker_ports`), and a worker its nanny restarts
        comes back at its old address (`HomingNanny`): a replay then meets the workers
        in the same sorted order, which Dask deals scatters over. A nanny restarting its
        worker is never closed by the cluster meanwhile (`LOST_WORKER_TIMEOUT`)."""
        settings: dict[str, Any] = {"distributed.worker.multiprocessing-method": "forkserver",
                                    "distributed.deploy.lost-worker-timeout": LOST_WORKER_TIMEOUT}
        if worker_ttl is not None:
            settings["distributed.scheduler.worker-ttl"] = worker_ttl
        config = dask.config.set(settings)
        try:
            with warnings.catch_warnings():
                # The scheduler's HTTP server falls back to a free port when 8787 is taken.
                warnings.filterwarnings("ignore", "Port 8787 is already in use")
                cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                       processes=True, dashboard_address=None,
                                       worker_class=HomingNanny,
                                       **{"worker_port": worker_ports(n_workers),
                                          **cluster_kwargs})
        except BaseException:
            config.__exit__(None, None, None)
            raise
        try:
            client = ClosingClient(cluster)
        except BaseException:
            cluster.close()
            config.__exit__(None, None, None)
            raise
        return cls(client, cluster, n_workers, owned=[client, cluster, config])

    def worker_tree(self, pid: int | None) -> list[int]:
        return process_tree(pid) if pid else []

    def restore_capacity(self, n_workers: int) -> int:
        """Start replacements for LocalCluster workers leaving for good (nanny-close, retire,
        preempt).

        A worker killed abruptly is restarted by its nanny; a nanny that closes is not.
        Its replacement is started as soon as it begins to close, under a new name,
        because a closing nanny lingers for about 2 s (its worker process waits for a
        thread).
        """
        cluster = self.cluster
        workers = getattr(cluster, "workers", None)
        spec = getattr(cluster, "worker_spec", None)
        if cluster is None or workers is None or spec is None:
            return 0
        with self._capacity_lock:
            for name, worker in list(workers.items()):
                if getattr(worker, "status", None) in _GONE:
                    workers.pop(name, None)
                    spec.pop(name, None)
            leaving = {name for name, worker in workers.items()
                       if getattr(worker, "status", None) in _LEAVING}
            missing = max(0, n_workers - len(set(spec) - leaving))
            for _ in range(missing):
                spec.update(cluster.new_worker_spec())
            if missing > 0 or not set(spec) <= set(workers):
                cluster.scale(len(spec))  # same size: only starts the workers not running yet
        return missing

    def trim(self, n_workers: int) -> bool:
        cluster = self.cluster
        workers = getattr(cluster, "workers", None)
        if cluster is None or workers is None:
            return False
        with self._capacity_lock:
            if (len(cluster.worker_spec) <= n_workers
                    or any(getattr(w, "status", None) in _LEAVING for w in workers.values())):
                return False
            cluster.scale(n_workers)  # SpecCluster closes the newest beyond n
        return True

    def close(self) -> None:
        owned, self._owned = self._owned, []
        for item in owned:
            if hasattr(item, "close"):
                with contextlib.suppress(Exception):
                    item.close()
            else:
                item.__exit__(None, None, None)
