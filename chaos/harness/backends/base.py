"""What a cluster backend is: where the harness's Dask cluster comes from, and its powers.

A backend gives the harness a connected `Client` and says which faults it can enact
(`unable`), whether worker pids may be signalled from this host (`local_signals`),
how a worker's whole process tree is reached (`worker_tree`), how the fleet is refilled
after a worker left for good (`restore_capacity`: each backend has its own), and how the
scheduler is killed and replaced (`kill_scheduler`, `restart_scheduler`). `close` stops
everything it started, even after a failure.
"""

from __future__ import annotations

import abc
import contextlib
from typing import Any, ClassVar

from distributed import Client

from chaos.harness.inflict import Landing, Victim
from chaos.spec import FaultKind

# A SpecCluster (LocalCluster, SLURMCluster) closes a worker's nanny or job for good
# when, `lost-worker-timeout` after that worker was removed, no worker of its name is
# registered. With kills every few seconds, that moment falls now and then in the
# restart after a later kill: the worker joins, takes tasks and scattered data, and
# leaves 0.2 s later, a death no fault explains (6 runs kept from two nightlies, at
# Dask's 15 s; docs/dask-upstream.md, 6). The harness replaces workers that leave for
# good itself, so the timeout is put out of reach of any campaign.
LOST_WORKER_TIMEOUT = "24h"


class ClosingClient(Client):
    """A `Client` that closes itself when its start fails.

    Dask leaves such a client half open: 'connecting', its event loop thread running. The
    garbage collector closes it later, in whichever thread it runs: in the event loop
    thread of another client being started, that close waits for a lock the starting
    client holds, and the start fails after 10 s (`assert loop is not None`).
    """

    def start(self, **kwargs: Any) -> None:
        try:
            super().start(**kwargs)
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise


class ClusterBackend(abc.ABC):
    """One way to get a Dask cluster for the harness. Subclasses set `name`."""

    name: ClassVar[str]
    # How lost workers come back: said in the campaign summary and the report.
    refill: ClassVar[str]
    # Whether the harness refills during runs too, as an autoscaler would (else only
    # between runs): needed where a fault can take every worker (a scheduler kill).
    refills_during_runs: ClassVar[bool] = False
    # Whether runs start on exactly `n_workers` workers: `settle` then waits out a worker
    # still registered on its way out (its replacement already up) instead of starting
    # a run on one worker too many.
    exact_fleet: ClassVar[bool] = False

    client: Client
    n_workers: int
    local_signals: bool = False
    security: Any = None  # distributed.security.Security, or None for plain TCP

    def unable(self, kind: FaultKind) -> str | None:
        """Why this backend cannot enact `kind`, or None when it can."""
        if kind == "scheduler-kill":
            return (f"the {self.name!r} backend cannot kill its scheduler and start another; "
                    "use --cluster processes")
        return None

    def worker_tree(self, pid: int | None) -> list[int]:
        """The pids a preemption of the worker process `pid` signals, from this host.

        Empty: the harness cannot see the processes, and asks the worker's nanny.
        """
        return []

    @abc.abstractmethod
    def restore_capacity(self, n_workers: int) -> int:
        """Start replacements for workers that left for good (none if someone else does);
        returns how many were started."""

    def trim(self, n_workers: int) -> bool:
        """Between runs: stop workers beyond `n_workers` that this backend started; True
        when it stopped some (the caller then looks again)."""
        return False

    def refill_during_run(self, n_workers: int) -> int:
        """What the harness calls while a run goes on: its refill thread
        (`refills_during_runs`), and the run's `FleetRefill` after a worker left; returns
        how many replacements were started."""
        return self.restore_capacity(n_workers)

    def preempt(self, victim: Victim, notice: float) -> Landing | None:
        """A preemption the way this backend's machines get one (a batch system's), or
        None: the harness signals the worker's process tree itself."""
        return None

    def kill_scheduler(self) -> tuple[int | None, str | None]:
        """SIGKILL the scheduler: its pid and None, or None and why it cannot."""
        return None, f"the {self.name!r} backend does not own its scheduler"

    def restart_scheduler(self, timeout: float) -> None:  # noqa: B027 - optional hook
        """Bring a scheduler (and workers) back after `kill_scheduler`, at the same address."""

    def describe(self) -> dict[str, Any]:
        """What the run-start event records of the cluster."""
        return {"backend": self.name, "refill": self.refill,
                "tls": self.security is not None}

    @abc.abstractmethod
    def close(self) -> None:
        """Close the client, and stop every process this backend started."""
