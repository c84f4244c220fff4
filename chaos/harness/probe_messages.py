"""`ProbeMessages`: what the harness tells the probes on the workers, through its client:
let a held probe go on, report everything sent so far (a flush), the run is over.

Every message is bounded: a worker that died or froze cannot hold a run up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from distributed import Client

from chaos.probes import flush_marker, release_hold, release_run

HOLD_RELEASE_WAIT = 5.0  # seconds a waited-for release may take; fire-and-forget ones 60


class ProbeMessages:
    """Messages to the probes of one topic, sent to the workers `live_workers` lists."""

    def __init__(self, client: Client, topic: str,
                 live_workers: Callable[[], Mapping[str, Any]]) -> None:
        self._client = client
        self._topic = topic
        self._live_workers = live_workers

    def release_hold(self, address: str | None, hold_id: str, decisions: dict[str, Any], *,
                     wait: bool = False) -> None:
        """Let a held probe on `address` go on.

        By default fire-and-forget: the worker may be frozen, and the message then waits
        for SIGCONT. With `wait`, return once the worker let the probe go (bounded): a
        graceful shutdown blocks the worker's event loop while it waits for running tasks,
        so the release must have landed before such a shutdown starts.
        """
        client = self._client

        async def send() -> None:
            with contextlib.suppress(Exception):  # a dead or frozen worker needs no release
                if address is None:  # a probe outside any worker waits on a Dask Event
                    if client.scheduler is not None:
                        await client.scheduler.event_set(name=hold_id)
                    return
                await asyncio.wait_for(
                    client._run(release_hold, hold_id, decisions, workers=[address],
                                on_error="ignore"),
                    timeout=HOLD_RELEASE_WAIT if wait else 60,
                )

        if wait:
            client.sync(send)
        elif client.loop is not None:
            client.loop.add_callback(send)

    def flush(self, run_id: str, flushed: Callable[[str], bool], *,
              exclude: Callable[[str], bool], timeout: float = 2.0) -> bool:
        """Wait until every live worker's earlier probe reports have been heard: each
        worker sends a marker after them, and `flushed(marker)` says it arrived."""
        token = uuid.uuid4().hex
        workers = [a for a in self._live_workers() if not exclude(a)]
        if not workers:
            return True
        client = self._client
        try:
            answered = client.sync(client._run, flush_marker, self._topic, run_id, token,
                                   workers=workers, on_error="ignore", callback_timeout=timeout)
        except Exception:  # a worker that cannot answer has nothing to flush
            return False
        workers = list(answered)  # a worker that died meanwhile has nothing more to send
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(flushed(f"{token}:{a}") for a in workers):
                return True
            time.sleep(0.002)
        return False

    def release_run(self, run_id: str, *, exclude: Callable[[str], bool],
                    timeout: float = 2.0) -> None:
        """Tell every live worker the run is over: no probe of it may hold any more."""
        workers = [a for a in self._live_workers() if not exclude(a)]
        if not workers:
            return
        # A worker that cannot answer holds nothing for long (its probes time out).
        with contextlib.suppress(Exception):
            self._client.sync(self._client._run, release_run, run_id, workers=workers,
                              on_error="ignore", callback_timeout=timeout)
