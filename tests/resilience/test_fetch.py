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
from collections.abc import Iterator

import pytest
from distributed import wait

from resilience.fetch import Fetched, ResultFetcher


def produce(label: str) -> list[str]:
    return [label]


@pytest.fixture
def frozen_pids() -> Iterator[list[int]]:
    """Whatever happens, the worker processes a test froze are resumed at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def test_a_result_is_not_held_hostage_by_a_frozen_holder_fetched_with_it(client, frozen_pids):
    healthy, doomed = sorted(client.scheduler_info()["workers"])
    ready = client.submit(produce, "ready", workers=[healthy], pure=False)
    stuck = client.submit(produce, "stuck", workers=[doomed], pure=False)
    wait([ready, stuck], timeout=30)
    pid = client.run(os.getpid, workers=[doomed])[doomed]
    frozen_pids.append(pid)
    os.kill(pid, signal.SIGSTOP)

    fetched: queue.Queue[Fetched] = queue.Queue()
    fetcher = ResultFetcher(client, fetched.put)
    results: dict[str, object] = {}
    started = time.monotonic()
    try:
        fetcher.start([ready, stuck])
        while ready.key not in results and time.monotonic() - started < 10:
            fetcher.restart_stalled()  # what the run loop does on each tick
            with contextlib.suppress(queue.Empty):
                item = fetched.get(timeout=0.1)
                results.update(item.results)
                fetcher.done(item)
    finally:
        fetcher.close()

    waited = time.monotonic() - started
    assert results.get(ready.key) == ["ready"], f"no result after {waited:.1f} s"
    assert waited < 5, f"the healthy result took {waited:.1f} s"
