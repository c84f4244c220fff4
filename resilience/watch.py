"""Which attempts are stuck: the basis of `step_timeout`.

Dask tells the client when a task ends, not when it starts, and a task may wait long
in a queue without anything being wrong. Two signals find the stuck ones:

- each attempt reports its start from the worker (`Worker.log_event`, a few
  milliseconds to reach us), and the timeout runs from there: a hung protocol;
- a worker the scheduler has not heard from (no heartbeat) for as long is frozen,
  and every attempt on it, started or queued, is stuck: a hung machine. This one
  needs no start report, which a worker frozen right after starting never sends.

Workers holding stuck attempts are *suspect*: new work avoids them until they speak.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from distributed import Client, get_worker

from resilience.scheduler_watch import ask_scheduler, worker_addresses

logger = logging.getLogger(__name__)

SILENCE_FLOOR = 3.0  # seconds: heartbeats may lag this much on a busy, healthy worker


def report_start(topic: str) -> None:
    """On a worker: tell the client that the current task started here, now."""
    worker = get_worker()
    worker.log_event(topic, {"key": worker.get_current_task(), "worker": worker.address})


def survey(silence: float, suspects: list[str],
           dask_scheduler: Any) -> tuple[dict[str, list[str]], list[str]]:
    """On the scheduler: the keys processing on each silent or suspect worker, and which
    workers have sent no heartbeat for `silence` seconds."""
    now = time.time()
    silent = [ws.address for ws in dask_scheduler.workers.values()
              if now - ws.last_seen > silence]
    held = {ws.address: [ts.key for ts in ws.processing]
            for ws in dask_scheduler.workers.values()
            if ws.address in silent or ws.address in suspects}
    return held, silent


def forgotten(keys: list[str], dask_scheduler: Any) -> list[str]:
    """On the scheduler: which of `keys` it no longer knows."""
    return [key for key in keys if key not in dask_scheduler.tasks]


def find_forgotten(client: Client, keys: list[str]) -> list[str]:
    """Attempts the scheduler forgot while their futures still wait: Dask will never
    resolve them (a rare race when a worker dies). [] if the scheduler cannot say."""
    if not keys:
        return []
    try:
        return list(ask_scheduler(client, forgotten, keys))
    except Exception as error:  # e.g. a scheduler going away
        logger.debug("cannot ask the scheduler which keys it forgot: %r", error)
        return []


class AttemptWatch:
    """Finds attempts past `timeout`, and the workers that hold them."""

    def __init__(self, client: Client, run_id: str, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self.topic = f"resilience-started-{run_id}"
        self._started: dict[str, tuple[float, str]] = {}
        self._late_workers: set[str] = set()
        self.suspects: set[str] = set()
        self._lock = threading.Lock()
        self._surveying = True
        client.subscribe_topic(self.topic, self._on_start)

    def _on_start(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        with self._lock:
            self._started[message["key"]] = (time.monotonic(), message["worker"])
            self._late_workers.discard(message["worker"])

    def stuck(self, keys: Iterable[str]) -> tuple[set[str], set[str]]:
        """Of `keys`: those stuck (started more than `timeout` ago, or on a silent worker),
        and those queued behind a stuck attempt on a live worker (not started: they will
        start when it ends, so they are stuck only if it never does)."""
        keys = set(keys)
        now = time.monotonic()
        with self._lock:
            late = {key for key in keys
                    if key in self._started and now - self._started[key][0] > self._timeout}
            self._late_workers.update(self._started[key][1] for key in late)
            late_workers = sorted(self._late_workers)
        held, silent = self._survey(late_workers)
        self.suspects = set(held)
        on_silent = keys & {key for w in silent for key in held[w]}
        behind = keys & {key for w in held if w not in silent for key in held[w]}
        return late | on_silent, behind - late - on_silent

    def healthy_workers(self) -> list[str] | None:
        """Workers to prefer for new work, or None (any) when nothing is suspect."""
        if not self.suspects:
            return None
        healthy = [w for w in worker_addresses(self._client) if w not in self.suspects]
        return healthy or None

    def forget(self, key: str) -> None:
        with self._lock:
            self._started.pop(key, None)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the client may be closing already
            self._client.unsubscribe_topic(self.topic)

    def _survey(self, late_workers: list[str]) -> tuple[dict[str, list[str]], set[str]]:
        """Keys held by each suspect worker, and which of them are silent."""
        if self._surveying:
            silence = max(self._timeout, SILENCE_FLOOR)
            try:
                held, silent = ask_scheduler(self._client, survey, silence, late_workers)
                return dict(held), set(silent)
            except Exception as error:  # e.g. a scheduler going away
                logger.warning("cannot ask the scheduler for silent workers (%r); only hung "
                               "protocols, not frozen workers, will be found", error)
                self._surveying = False
        return {w: [] for w in late_workers}, set()
