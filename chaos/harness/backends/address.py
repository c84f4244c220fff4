"""The `address` backend: an existing cluster, reached at `tcp://` or `tls://HOST:PORT`.

Faults go through the workers' nannies (`Client.run(..., nanny=True)`), so every worker
needs a nanny, and the scheduler, the nannies and the workers must import `chaos`. The
backend checks both when it connects and refuses, naming what is missing. It owns no
process: workers that leave for good are brought back by the cluster's own manager (a
batch system, an autoscaler), and the harness only waits for them.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from distributed import Client

import chaos.harness.scheduler_calls as scheduler_calls
from chaos.errors import ClusterError
from chaos.harness.backends.base import ClosingClient, ClusterBackend


class AddressBackend(ClusterBackend):
    """A client of a cluster someone else runs."""

    name: ClassVar[str] = "address"
    refill: ClassVar[str] = ("the cluster's own manager (batch system, autoscaler) replaces "
                             "lost workers; the harness only waits for them")

    def __init__(self, address: str, *, security: Any = None, timeout: float = 30.0) -> None:
        self.address = address
        self.security = security
        try:
            self.client = ClosingClient(address, security=security, timeout=timeout)
        except Exception as error:
            raise ClusterError(
                f"--scheduler-address {address}: could not connect ({type(error).__name__}: "
                f"{error}); check the address, and pass --tls-ca-file/--tls-cert/--tls-key "
                "when the cluster uses TLS."
            ) from None
        try:
            self.n_workers = self._check()
        except BaseException:
            self.close()
            raise

    @classmethod
    def wrap(cls, client: Client) -> AddressBackend:
        """A backend around a client connected elsewhere (not checked, not owned)."""
        backend = cls.__new__(cls)
        backend.address = str(getattr(client.scheduler, "address", "?"))
        backend.security = None
        backend.client = client
        backend.n_workers = 0
        return backend

    def _check(self) -> int:
        client = self.client
        snapshot = client.run_on_scheduler(scheduler_calls.scheduler_snapshot)
        workers = snapshot["workers"]
        if not workers:
            raise ClusterError(f"the cluster at {self.address} has no running worker; start "
                               "some (`dask worker ADDRESS --nanny`) and try again.")
        bare = sorted(a for a, info in workers.items() if info["nanny"] is None)
        if bare:
            raise ClusterError(
                f"worker(s) {', '.join(bare)} run without a nanny; the harness enacts faults "
                "through nannies. Start workers with `dask worker ADDRESS --nanny`."
            )
        missing = []
        with contextlib.suppress(Exception):
            if client.run_on_scheduler(_imports_chaos) is not True:
                missing.append("the scheduler")
        replies = client.run(_imports_chaos, on_error="return")
        missing += [f"worker {a}" for a, ok in sorted(replies.items()) if ok is not True]
        nannies = client.run(_imports_chaos, nanny=True, on_error="return")
        missing += [f"nanny {a}" for a, ok in sorted(nannies.items()) if ok is not True]
        if missing:
            raise ClusterError(
                f"{', '.join(missing)} cannot import `chaos`; install this project where the "
                "cluster runs (`pip install resilience-testbed`) and restart it."
            )
        return len(workers)

    def restore_capacity(self, n_workers: int) -> int:
        """Nothing to do: the cluster's manager replaces workers."""
        return 0

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.address}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)


def _imports_chaos() -> bool:
    try:
        import chaos.probes  # noqa: F401
        from chaos.harness.inflict import Inflictor  # noqa: F401
    except ImportError:
        return False
    return True
