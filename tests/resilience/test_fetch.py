"""Fetching results: a healthy result is never held hostage by another one fetched with it.

Nightly seed 3141 (`s011-resilience-r1-disk-scatter`): two step results were fetched in
one batch; one's holder was leaving, and Dask's gather retried the connection to it for
its connect timeout (30 s). Both deliveries waited 30 s, though the other result sat on a
healthy worker. A frozen holder stalls a gather the same way, and reproducibly.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from distributed import Client, Future, wait

from resilience.fetch import Fetched, ResultFetcher


def produce(label: str) -> list[str]:
    return [label]


def take_results(fetcher: ResultFetcher, fetched: queue.Queue[Fetched], key: str,
                 seconds: float, on_tick: Callable[[], object] = lambda: None,
                 ) -> dict[str, object]:
    """Take the fetcher's outcomes until `key`'s result is among them, or `seconds` pass."""
    results: dict[str, object] = {}
    deadline = time.monotonic() + seconds
    while key not in results and time.monotonic() < deadline:
        on_tick()
        with contextlib.suppress(queue.Empty):
            item = fetched.get(timeout=0.1)
            results.update(item.results)
            fetcher.done(item)
    return results


@pytest.fixture
def frozen_pids() -> Iterator[list[int]]:
    """Whatever happens, the worker processes a test froze are resumed at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def one_result_on_a_frozen_holder(client, frozen_pids: list[int]
                                  ) -> tuple[Future[Any], Future[Any], str, int]:
    """A result on a healthy worker, and one pinned to a worker then frozen (SIGSTOP):
    (ready, on the frozen worker, its address, its pid)."""
    healthy, doomed = sorted(client.nthreads())
    ready = client.submit(produce, "ready", workers=[healthy], pure=False)
    held = client.submit(produce, "held", workers=[doomed], pure=False)
    wait([ready, held], timeout=30)
    pid = client.run(os.getpid, workers=[doomed])[doomed]
    frozen_pids.append(pid)
    os.kill(pid, signal.SIGSTOP)
    return ready, held, doomed, pid


def test_a_result_is_not_held_hostage_by_a_frozen_holder_fetched_with_it(client, frozen_pids):
    ready, stuck, _, _ = one_result_on_a_frozen_holder(client, frozen_pids)

    fetched: queue.Queue[Fetched] = queue.Queue()
    fetcher = ResultFetcher(client, fetched.put)
    started = time.monotonic()
    try:
        fetcher.start([ready, stuck])
        # restart_stalled: what the run loop does on each tick
        results = take_results(fetcher, fetched, ready.key, 10, fetcher.restart_stalled)
    finally:
        fetcher.close()

    waited = time.monotonic() - started
    assert results.get(ready.key) == ["ready"], f"no result after {waited:.1f} s"
    # Issue 12: no wait over 2 s without an event saying why; the restart is that event's
    # cause, so the healthy result comes soon after 2 s (a slack for a loaded host).
    assert waited < 2.8, f"the healthy result took {waited:.1f} s"


def test_a_fetch_under_way_when_a_holder_dies_is_started_afresh_at_once(client, frozen_pids):
    """Nightly seed 1111 (`s014-resilience-r1-disk-scatter`): a batch of three results
    was fetched as the holder of one of them died; that result could never be recomputed,
    and Dask's gather waited for it, and held the other two, until SLOW_AFTER (2.4 s).
    The worker-removed notice is the signal: the run loop restarts the fetch then."""
    # `lost` is pinned to the doomed worker's address, which never comes back: it cannot
    # be recomputed. Frozen, its holder holds the gather, as a dying worker does.
    ready, lost, doomed, pid = one_result_on_a_frozen_holder(client, frozen_pids)

    fetched: queue.Queue[Fetched] = queue.Queue()
    fetcher = ResultFetcher(client, fetched.put)
    try:
        fetcher.start([ready, lost])
        time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while doomed in client.nthreads() and time.monotonic() < deadline:
            time.sleep(0.01)
        killed = time.monotonic()
        fetcher.restart_started_before(killed)  # what the run loop does on the notice
        results = take_results(fetcher, fetched, ready.key, 5)
    finally:
        fetcher.close()

    waited = time.monotonic() - killed
    assert results.get(ready.key) == ["ready"], f"no result {waited:.1f} s after the removal"
    assert waited < 1.0, f"the healthy result came {waited:.1f} s after the removal"


def test_a_fetch_started_afresh_says_which_result_no_worker_holds_any_more(client):
    # Asked alone, the scheduler answers with an error status, not with data: the fetch
    # fails with the key in its reason (not a KeyError for the absent data).
    _, doomed = sorted(client.nthreads())
    lost = client.submit(produce, "lost", workers=[doomed], pure=False)
    wait([lost], timeout=30)
    os.kill(client.run(os.getpid, workers=[doomed])[doomed], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while doomed in client.nthreads() and time.monotonic() < deadline:
        time.sleep(0.01)
    fetched: queue.Queue[Fetched] = queue.Queue()
    fetcher = ResultFetcher(client, fetched.put)
    try:
        fetcher.start([lost])
        fetcher.restart_started_before(time.monotonic() + 1)
        outcome = fetched.get(timeout=10)
    finally:
        fetcher.close()
        client.cancel([lost])
    assert outcome.error is not None and not outcome.results
    assert "no worker holds" in outcome.error and str(lost.key) in outcome.error, outcome


def test_a_failed_fetch_is_reported_only_after_a_pause(client, local_cluster):
    """The run loop fetches a failed fetch's results again at once: without the pause,
    a fetch that keeps failing (a scheduler going away, say) would spin a core."""
    with Client(local_cluster) as other:
        foreign = other.submit(produce, "elsewhere", pure=False)
        wait([foreign], timeout=30)
        fetched: queue.Queue[Fetched] = queue.Queue()
        fetcher = ResultFetcher(client, fetched.put)
        started = time.monotonic()
        try:
            fetcher.start([foreign])  # Dask refuses to gather another client's future
            outcome = fetched.get(timeout=10)
        finally:
            fetcher.close()

    assert outcome.error is not None and not outcome.results
    # A floor of its own, not RETRY_PAUSE read back: a pause set to 0 or below must fail.
    took = time.monotonic() - started
    assert took >= 0.1, f"the failed fetch came back in {took:.3f} s"


class SlowToSend:
    """A result whose holder takes `seconds` to pickle it: a big result on a slow link."""

    def __init__(self, value: str, seconds: float) -> None:
        self.value, self.seconds = value, seconds

    def __reduce__(self) -> tuple[Any, ...]:
        time.sleep(self.seconds)
        return (str, (self.value,))


def test_a_fetch_that_is_only_slow_is_left_alone_until_slow_after(client):
    # Started afresh, a slow transfer would start over: it is reported and restarted only
    # past SLOW_AFTER (2 s), not after 1.2 s. Pickled only to be sent: only the fetch is slow.
    slow = client.submit(SlowToSend, "slow", 1.2, pure=False)
    wait([slow], timeout=30)
    fetched: queue.Queue[Fetched] = queue.Queue()
    fetcher = ResultFetcher(client, fetched.put)
    restarted: list[Any] = []
    try:
        fetcher.start([slow])
        results = take_results(fetcher, fetched, slow.key, 10,
                               lambda: restarted.extend(fetcher.restart_stalled()))
    finally:
        fetcher.close()

    assert results.get(slow.key) == "slow"
    assert restarted == []
