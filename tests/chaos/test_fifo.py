"""First-in-first-out ranking on the harness's clusters (chaos.harness.fifo)."""

from __future__ import annotations

import time

from distributed import wait


def started(label: str) -> tuple[str, float]:
    began = time.time()
    time.sleep(0.02)
    return label, began


def test_each_worker_runs_its_tasks_in_the_order_they_were_submitted(harness):
    """Three tasks a worker, submitted within milliseconds: Dask's own ranking puts them
    in one generation, and a worker runs the one it received last first (t0, t6, t3); on
    the harness's clusters each runs them in the order they were submitted."""
    client = harness.client
    workers = sorted(harness.refresh().workers)
    futures = [client.submit(started, f"t{n}", workers=[workers[n % len(workers)]],
                             pure=False) for n in range(3 * len(workers))]
    try:
        wait(futures, timeout=30)
        for worker in range(len(workers)):
            mine = [future.result() for future in futures[worker::len(workers)]]
            by_start = [label for label, _ in sorted(mine, key=lambda pair: pair[1])]
            assert by_start == [label for label, _ in mine], by_start
    finally:
        client.cancel(futures)
