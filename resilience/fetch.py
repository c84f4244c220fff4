"""Fetching finished results from the workers: in batches, in the background.

A fetch runs on the client's event loop while the run loop goes on, and its outcome comes
back to the run loop as a `Fetched` item (through `on_fetched`). So a fetch that takes
long never holds up anything else: Dask's gather waits for a result whose holder died
until it is recomputed, and a connection attempt to a worker that died a moment before
the scheduler noticed is retried for up to `distributed.comm.timeouts.connect` (30 s by
default). The run loop used to wait for each fetch, with a 10 s timeout doubled on
every retry, and every other step's recovery and delivery waited with it.

A fetch still pending after `SLOW_AFTER` seconds is reported (`restart_stalled()`), so
that the run says what it waits for, and started afresh, each of its results on its own:
Dask gathers a batch in one request, so one result whose holder died or froze held every
other result of the batch hostage for that connect timeout (nightly seed 3141: two
deliveries waited 30 s, one of them on a healthy worker). A fresh request also asks the
scheduler anew where each result is, by then often recomputed elsewhere. The stalled
request is abandoned, not cancelled: cancelling it would cancel Dask's shared gather
request, which other gathers of the client may be waiting on.

Every fetch under way when a worker leaves is started afresh the same way, at once
(`restart_started_before`, on the scheduler's worker-removed notice): the worker's
departure is what stalls a fetch, so the run need not wait SLOW_AFTER to find out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from distributed import Client, Future

logger = logging.getLogger(__name__)

SLOW_AFTER = 2.0  # seconds: a fetch pending longer is reported and started afresh
RETRY_PAUSE = 0.2  # seconds before a failed fetch is reported (and so tried again)


@dataclass(frozen=True)
class Fetched:
    """The outcome of one fetch: each asked-for future, and the results fetched (by key);
    a key without a result errored, was cancelled, or could not be fetched (`error`)."""

    futures: tuple[Future[Any], ...]
    results: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class _Pending:
    futures: tuple[Future[Any], ...]
    started: float
    restarted: bool = False  # a fetch started afresh is not restarted again

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(str(f.key) for f in self.futures)


class ResultFetcher:
    """Starts fetches; each one's `Fetched` goes to `on_fetched` (from the client's event
    loop thread) when it ends. `fetching` holds the keys of the fetches under way."""

    def __init__(self, client: Client, on_fetched: Callable[[Fetched], None]) -> None:
        self._client = client
        self._on_fetched = on_fetched
        self._lock = threading.Lock()
        self._pending: dict[concurrent.futures.Future[Any], _Pending] = {}
        self.fetching: set[str] = set()

    def start(self, futures: list[Future[Any]]) -> None:
        """Fetch the results of `futures` (skipping those already being fetched)."""
        futures = [f for f in futures if str(f.key) not in self.fetching]
        if not futures:
            return
        self.fetching.update(str(f.key) for f in futures)
        self._launch(_Pending(tuple(futures), time.monotonic()))

    def _launch(self, pending: _Pending) -> None:
        loop = self._client.loop
        if loop is None:
            raise RuntimeError("the client is closed: no results can be fetched")
        gather = self._gather_alone if pending.restarted else self._gather
        running = asyncio.run_coroutine_threadsafe(
            gather(pending.futures), loop.asyncio_loop)  # type: ignore[attr-defined]
        with self._lock:
            self._pending[running] = pending
        running.add_done_callback(lambda done: self._finish(done, pending.futures))

    def done(self, fetched: Fetched) -> None:
        """The run loop took `fetched`: its keys may be fetched again."""
        self.fetching.difference_update(str(f.key) for f in fetched.futures)

    def restart_stalled(self) -> list[tuple[tuple[str, ...], float]]:
        """Start afresh, each result on its own, the fetches pending for over SLOW_AFTER
        seconds (once); returns their keys and how long they waited, to be reported."""
        now = time.monotonic()
        return self._restart(lambda p: not p.restarted and now - p.started > SLOW_AFTER, now)

    def restart_started_before(self, moment: float) -> list[tuple[tuple[str, ...], float]]:
        """A worker left at `moment` (monotonic): start afresh, each result on its own,
        the fetches begun before it. One of them may wait on a result that died with
        that worker, and Dask's gather then waits for a recompute that may never come
        (its input died too), with every other result of the batch (nightly seed 1111:
        2.4 s, until SLOW_AFTER). The worker's departure is the signal; no need to wait."""
        return self._restart(lambda p: p.started < moment, time.monotonic())

    def _restart(self, select: Callable[[_Pending], bool],
                 now: float) -> list[tuple[tuple[str, ...], float]]:
        chosen = []
        with self._lock:
            for running, pending in list(self._pending.items()):
                if select(pending):
                    del self._pending[running]  # its outcome, if it ever comes, is dropped
                    chosen.append(pending)
        for pending in chosen:
            for future in pending.futures:
                self._launch(_Pending((future,), now, restarted=True))
        return [(pending.keys, now - pending.started) for pending in chosen]

    def close(self) -> None:
        """Stop the fetches under way (the run is over)."""
        with self._lock:
            pending, self._pending = list(self._pending), {}
        for running in pending:
            running.cancel()

    async def _gather(self, futures: tuple[Future[Any], ...]) -> dict[str, Any]:
        try:
            gathered = await self._client._gather({f.key: f for f in futures}, errors="skip")
        except Exception:
            await asyncio.sleep(RETRY_PAUSE)  # the run loop fetches again: not in a hot loop
            raise
        # Results are lists; None marks a key that errored or was cancelled meanwhile.
        return {str(key): value for key, value in gathered.items() if value is not None}

    async def _gather_alone(self, futures: tuple[Future[Any], ...]) -> dict[str, Any]:
        """The results in a scheduler request of their own: `Client.gather` joins a
        request to any other one not sent yet, the batching that held them hostage."""
        scheduler = self._client.scheduler
        assert scheduler is not None, "the client is not connected"
        try:
            response = await scheduler.gather(keys=[f.key for f in futures])
            if response["status"] != "OK":  # its holders are gone: Dask recomputes it
                raise RuntimeError(f"no worker holds {response.get('keys')} any more")
        except Exception:
            await asyncio.sleep(RETRY_PAUSE)
            raise
        return {str(key): value for key, value in response["data"].items() if value is not None}

    def _finish(self, done: concurrent.futures.Future[Any],
                futures: tuple[Future[Any], ...]) -> None:
        with self._lock:
            if self._pending.pop(done, None) is None:
                return  # closed: nobody wants it
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            logger.info("fetching %d results failed: %r; they are fetched again",
                        len(futures), error)
            self._on_fetched(Fetched(futures, error=repr(error)))
            return
        self._on_fetched(Fetched(futures, done.result()))
