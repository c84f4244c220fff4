"""When a run that is not moving must act: a wait for workers, and attempts in limbo.

Two clocks the run loop consults while nothing completes; each decides *when*, the loop
decides *what* (fail the unfinished steps, fail over the forgotten attempts):

- `WorkerWait`: the cluster has no worker. Never a silent wait: it starts with a warning
  and a `WaitingForWorkers` event, ends with `WorkersReturned`, and times out after
  `worker_wait_timeout`.
- `LimboClock`: when to ask the scheduler about attempts whose keys it may have
  forgotten (a rare race when a worker dies: Dask will never resolve such futures).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from distributed import Client

from resilience import events
from resilience.scheduler_watch import worker_addresses

logger = logging.getLogger(__name__)

LIMBO_AFTER = 2.0  # idle seconds before asking the scheduler about attempts gone silent
LIMBO_GRACE = 0.5  # after a worker left: time for Dask's own notices to reach the futures


class WorkerWait:
    """The wait for workers of one run."""

    def __init__(self, client: Client, timeout: float,
                 emit: Callable[[events.RunEvent], None]) -> None:
        self._client = client
        self._timeout = timeout
        self._emit = emit
        self._since: float | None = None

    def timed_out(self, unfinished: int) -> bool:
        """Look at the cluster: start or end the wait; True once it has lasted too long."""
        workers = self.count_workers()
        if workers:
            self.end(workers)
            return False
        now = time.monotonic()
        if self._since is None:
            self._since = now
            logger.warning("the cluster has no workers; %d unfinished step(s) wait up to "
                           "worker_wait_timeout=%gs for one", unfinished, self._timeout)
            self._emit(events.WaitingForWorkers(unfinished, self._timeout))
        return now - self._since >= self._timeout

    def end(self, workers: int | None = None) -> None:
        """The wait is over (a step completed, or workers are back), if there was one."""
        if self._since is None:
            return
        workers = self.count_workers() if workers is None else workers
        waited = time.monotonic() - self._since
        self._since = None
        logger.warning("the wait for workers ended after %.1f s (%d worker(s) now); going on",
                       waited, workers)
        self._emit(events.WorkersReturned(workers, waited))

    def count_workers(self) -> int:
        try:
            return len(worker_addresses(self._client))
        except Exception:  # the scheduler is unreachable: as bad as no workers
            return 0


class LimboClock:
    """When to look for attempts in limbo, and which: those submitted before `cutoff()`.

    LIMBO_GRACE after a worker left (for the attempts sent before), and after LIMBO_AFTER
    idle seconds (for those older than that), so that a key still on its way to the
    scheduler, or a notice still on its way back, is never mistaken; or every attempt,
    once the client is back from a lost scheduler (nothing was on its way meanwhile).
    """

    def __init__(self) -> None:
        self.last_activity = time.monotonic()
        self._after_departure: tuple[float, float] | None = None  # (look at, sent before)

    def activity(self) -> None:
        """Something completed: the run is moving."""
        self.last_activity = time.monotonic()

    def worker_left(self) -> None:
        now = time.monotonic()
        self._after_departure = (now + LIMBO_GRACE, now)

    def due_in(self) -> float | None:
        """Seconds until the look a departure asked for; None when none is asked for."""
        if self._after_departure is None:
            return None
        return max(0.0, self._after_departure[0] - time.monotonic())

    def cutoff(self, every: bool = False) -> float | None:
        """Look now at the attempts submitted before the returned time; None: not now."""
        now = time.monotonic()
        if every:
            return float("inf")
        if self._after_departure is not None and now >= self._after_departure[0]:
            cutoff, self._after_departure = self._after_departure[1], None
            return cutoff
        if now - self.last_activity >= LIMBO_AFTER:
            self.last_activity = now  # at most one look per idle period of that length
            return now - LIMBO_AFTER
        return None
