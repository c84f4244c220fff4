"""Watching the client's link to its scheduler: a lost scheduler ends a run within a
bound, and one that comes back (a new scheduler at the same address) is noticed.

Dask's client cancels every future when its connection drops and reconnects to the same
address by itself. `SchedulerWatch.check()` tells the run loop which of four states it
is in; the loop decides what each means (resubmit, wait, give up).

    running   connected, as before
    back      connected again after a loss (seen, or a new scheduler id): every key the
              run waits on is forgotten
    waiting   disconnected for less than scheduler_timeout: wait (it has slept a tick)
    lost      disconnected for longer, or the client gave up or stopped trying to
              reconnect: `reason` says why
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from distributed import Client

logger = logging.getLogger(__name__)

POLL = 0.1  # seconds between two looks at a client that lost its scheduler
NOTICE = 5.0  # seconds a client may take to notice that a closed comm was its scheduler's

LinkState = Literal["running", "back", "waiting", "lost"]


class SchedulerWatch:
    """The state of one client's link to its scheduler, for one run."""

    def __init__(self, client: Client, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self._lost_since: float | None = None
        self._scheduler_id = self._identity()
        self.reason: str | None = None  # set once the state is "lost"

    def check(self) -> LinkState:
        status = self._client.status
        if status == "running":
            # A reconnection can happen between two checks (the loop may be busy for
            # seconds): a new scheduler id says so even when no check saw the loss.
            identity = self._identity()
            replaced = None not in (identity, self._scheduler_id) and (
                identity != self._scheduler_id)
            back = self._lost_since is not None or replaced
            self._lost_since = None
            self._scheduler_id = identity or self._scheduler_id
            return "back" if back else "running"
        now = time.monotonic()
        if self._lost_since is None:
            self._lost_since = now
            logger.warning("the client lost its scheduler (status %r); waiting up to %gs",
                           status, self._timeout)
        waited = now - self._lost_since
        stopped = reconnection_ended(self._client)
        if stopped is not None:
            self.reason = (
                f"the client stopped trying to reconnect to its scheduler {waited:.0f} s "
                f"after losing it, on an error Dask's reconnection does not retry "
                f"({stopped}): it will never reconnect by itself. Make a new Client")
            return "lost"
        if waited < self._timeout and status not in ("closing", "closed"):
            time.sleep(POLL)
            return "waiting"
        self.reason = (f"the scheduler was unreachable for {waited:.0f} s (client status "
                       f"{status!r}; scheduler_timeout={self._timeout}s): killed, or its host "
                       "lost")
        return "lost"

    def _identity(self) -> str | None:
        """The id of the scheduler the client last connected to. The client refreshes it
        on every (re)connection, before its status is "running" again; read from its
        cache (no round trip), which `Client.scheduler_info()` would refresh with one."""
        identity = getattr(self._client, "_scheduler_identity", None) or {}
        value = identity.get("id") if hasattr(identity, "get") else None
        return str(value) if value else None

    def noticed_a_loss(self) -> bool:
        """Whether the client lost its scheduler, given NOTICE seconds to see it: a call
        can fail on the closed comm a moment before the client notices."""
        deadline = time.monotonic() + NOTICE
        while self._client.status == "running":
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL)
        return True


def reconnection_ended(client: Client) -> str | None:
    """The error that ended `client`'s reconnection, if it ended with the client still
    connecting. Dask reconnects inside the task that reads the scheduler's reports, and
    retries only OSError: a TLS connection closed before its handshake raises ValueError
    ("IOStream is not idle"), which ends that task, and the client stays "connecting"
    for ever, even once a scheduler is back (a listener that accepts and closes, as a
    proxy with no backend does, is enough)."""
    task = getattr(client, "_handle_report_task", None)
    if client.status != "connecting" or task is None or not task.done():
        return None
    return "cancelled" if task.cancelled() else repr(task.exception())
