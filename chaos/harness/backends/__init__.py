"""Cluster backends: where the harness's Dask cluster comes from.

    local       a LocalCluster in this process (the default; fastest)
    processes   `dask scheduler` + N `dask worker --nanny` processes, TLS by default
    address     an existing cluster at --scheduler-address
    slurm       SLURM jobs from dask-jobqueue's SLURMCluster, preempted with requeue

`open_backend(name, ...)` builds one; each says which faults it can enact, and has its
own way of refilling the fleet (`ClusterBackend.refill`).
"""

from __future__ import annotations

from typing import Any

from chaos.errors import ClusterError
from chaos.harness.backends.address import AddressBackend
from chaos.harness.backends.base import ClusterBackend
from chaos.harness.backends.local import LocalBackend
from chaos.harness.backends.processes import ProcessesBackend
from chaos.harness.backends.tls import TlsFiles, temporary_tls, tls_from_files

BACKENDS = ("local", "processes", "address", "slurm")


def open_backend(name: str, *, n_workers: int = 3, address: str | None = None,
                 security: Any = None, tls: bool = True, worker_ttl: str | None = None,
                 **options: Any) -> ClusterBackend:
    """A started backend by name; ClusterError says what is missing."""
    if name == "local":
        return LocalBackend.start(n_workers, worker_ttl=worker_ttl, **options)
    if name == "processes":
        return ProcessesBackend(n_workers, tls=tls, worker_ttl=worker_ttl, **options)
    if name == "slurm":
        from chaos.harness.backends.slurm import SlurmBackend  # needs dask-jobqueue

        return SlurmBackend(n_workers, tls=tls, worker_ttl=worker_ttl, **options)
    if name == "address":
        if not address:
            raise ClusterError("--cluster address needs --scheduler-address tcp://HOST:PORT "
                               "(or tls://HOST:PORT with the certificate flags).")
        return AddressBackend(address, security=security)
    raise ClusterError(f"--cluster {name!r}: choose one of {', '.join(BACKENDS)}.")


__all__ = [
    "BACKENDS",
    "AddressBackend",
    "ClusterBackend",
    "LocalBackend",
    "ProcessesBackend",
    "TlsFiles",
    "open_backend",
    "temporary_tls",
    "tls_from_files",
]
