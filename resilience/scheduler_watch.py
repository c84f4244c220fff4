"""Watching the client's link to its scheduler: a lost scheduler ends a run within a
bound, and one that comes back (a new scheduler at the same address) is noticed.

Dask's client cancels every future when its connection drops and reconnects to the same
address by itself. `SchedulerWatch.check()` tells the run loop which of four states it
is in; the loop decides what each means (resubmit, wait, give up).

    running   connected, as before
    back      connected again after a loss (seen, or a new scheduler id): every key the
              run waits on is forgotten
    waiting   disconnected for less than scheduler_timeout: wait (it has slept a tick)
    lost      disconnected for longer, the client gave up, or it no longer hears its
              scheduler (`hearing_ended`): `reason` says why
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from distributed import Client

logger = logging.getLogger(__name__)

POLL = 0.1  # seconds between two looks at a client that lost its scheduler
NOTICE = 5.0  # seconds a client may take to notice that a closed comm was its scheduler's
# Seconds a question to the scheduler may take. One put as the scheduler dies waits until
# the client gives up reconnecting (its timeout: 30 s by default), far past
# scheduler_timeout: a deploy test's run outlived its scheduler so by 40 s.
CALL_BOUND = 10.0

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
        if (deaf := hearing_ended(self._client)) is not None:
            self.reason = (f"the client no longer hears its scheduler: {deaf}, and Dask "
                           "does not recover from that by itself. Make a new Client")
            return "lost"
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


def ask_scheduler(client: Client, function: Callable[..., Any], *args: Any) -> Any:
    """`client.run_on_scheduler(function, *args)`, given up (TimeoutError) after
    CALL_BOUND: every question the library puts to its scheduler goes through here."""
    return client.run_on_scheduler(function, *args, callback_timeout=CALL_BOUND)


def worker_addresses(client: Client) -> list[str]:
    """The scheduler's workers, asked within CALL_BOUND."""
    return list(client.nthreads(callback_timeout=CALL_BOUND))


def hearing_ended(client: Client) -> str | None:
    """Why `client` no longer hears its scheduler, if so: the task that reads the
    scheduler's reports, and reconnects, has ended while the client is neither closing
    nor closed. Dask does not start it again: results are never reported, and a lost
    scheduler is never reconnected to. It ends on a "close" or "stream-closed" message
    from a live scheduler, or on an error: the reconnection retries only OSError, and
    over TLS a connection closed before its handshake raises ValueError ("IOStream is
    not idle"; a listener that accepts and closes, as a proxy with no backend does)."""
    task = getattr(client, "_handle_report_task", None)
    if client.status not in ("running", "connecting") or task is None or not task.done():
        return None
    if task.cancelled():
        return "its report task was cancelled"
    error = task.exception()
    return (f"its report task ended with {error!r}" if error is not None
            else "the scheduler closed its report stream")
