"""Worker arrivals and departures, pushed from the scheduler to the run loop as they happen.

Futures tell the client when an attempt ends, not when a worker left: a departure that
Dask handles itself (it reschedules the steps it can) is invisible, and one it mishandles
(a future left waiting on a key the scheduler forgot) is found only by asking. So a small
scheduler plugin logs each arrival and departure on the run's own topic (`log_event`
reaches a subscribed client in a few milliseconds), and the run loop reacts to that
notice instead of polling for it.

Why not the scheduler's "all" topic, which has these too: a client holds one handler per
topic (ours would replace the user's), and "all" also carries every gather and
run_on_scheduler call. The plugin needs this library on the scheduler (a run checks
that at its start: `resilience.environment`); should the scheduler refuse it anyway, the
run goes on with the loop's periodic checks (`available` is False then).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from distributed import Client
from distributed.diagnostics.plugin import SchedulerPlugin

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # seconds for removing the plugin: a scheduler may be dying meanwhile


@dataclass(frozen=True)
class WorkerNotice:
    """A worker joined or left the cluster; `running` workers were left after it."""

    action: Literal["added", "removed"]
    worker: str
    running: int
    time: float  # when the scheduler saw it (its clock, Unix time)


class WorkerNotices:
    """Client side: `on_notice(WorkerNotice)` is called (on the client's event loop
    thread) for every worker arrival and departure, from `start()` to `close()`."""

    def __init__(self, client: Client, run_id: str,
                 on_notice: Callable[[WorkerNotice], None]) -> None:
        self._client = client
        self._on_notice = on_notice
        self.topic = f"resilience-workers-{run_id}"
        self.available = False

    def start(self) -> bool:
        """Subscribe and install the plugin; False (and a log line) when the scheduler
        refuses it (the run then finds departures by periodic checks)."""
        self._client.subscribe_topic(self.topic, self._receive)
        try:
            self._client.register_plugin(DepartureReporter(self.topic), name=self.topic)
        except Exception as error:
            logger.info("no worker notices from the scheduler (%r); departures are found "
                        "by periodic checks instead", error)
            self._unsubscribe()
            return False
        self.available = True
        return True

    def reconnected(self) -> None:
        """The client is back from a lost scheduler, most likely a new one, which has no
        plugin: install it there (or go on with the periodic checks)."""
        if self.available:
            self.available = False
            self.start()

    def close(self) -> None:
        # A lost scheduler took the plugin with it; a dying one must not hold the run's
        # end up (Client.unregister_scheduler_plugin has no time bound of its own).
        scheduler = self._client.scheduler
        if self.available and scheduler is not None and self._client.status == "running":
            with contextlib.suppress(Exception):
                self._client.sync(scheduler.unregister_scheduler_plugin, name=self.topic,
                                  callback_timeout=CLOSE_TIMEOUT)
        self.available = False
        self._unsubscribe()

    def _unsubscribe(self) -> None:
        with contextlib.suppress(Exception):
            self._client.unsubscribe_topic(self.topic)

    def _receive(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        self._on_notice(WorkerNotice(message["action"], message["worker"],
                                     int(message["running"]), float(message["time"])))


class DepartureReporter(SchedulerPlugin):
    """Scheduler side: logs each worker arrival and departure on `topic`, as plain data.

    Scheduler.remove_worker calls plugins after it has rescheduled (or given up on) the
    departed worker's tasks, so a client reacting to the notice sees the new state."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def add_worker(self, scheduler: Any, worker: str) -> None:
        self._report(scheduler, "added", worker)

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        self._report(scheduler, "removed", worker)

    def _report(self, scheduler: Any, action: str, worker: str) -> None:
        scheduler.log_event(self.topic, {"action": action, "worker": worker,
                                         "running": len(scheduler.running),
                                         "time": time.time()})
