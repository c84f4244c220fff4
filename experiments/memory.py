"""Worker memory held by a run's data, sampled from the scheduler while the run goes.

Every `interval` seconds a small function on the scheduler counts, per worker, the keys
that worker holds (step inputs, their replicas, results not yet fetched); each stands
for one payload of the workload (Dask's `sizeof` cannot see inside a synthetic pose,
so the scheduler's byte counts would be far too small), so the bytes are keys x
`payload_bytes`.
The peak per worker is what a user must provision; the bytes held beyond one copy of
each key, spread over the live workers, are what replication costs. The sampler is
a thread with a bounded life: `stop()` joins it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from distributed import Client


class DataSampler:
    """Peak bytes held per worker, and replica bytes per worker, over one run."""

    def __init__(self, client: Client, payload_bytes: int, interval: float = 0.1) -> None:
        self.client = client
        self.payload_bytes = payload_bytes
        self.interval = interval
        self.peak_worker_bytes = 0
        self.peak_replica_bytes_per_worker = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="study-memory", daemon=True)

    def __enter__(self) -> DataSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a sample lost to a dying worker is fine
                held, distinct = self.client.run_on_scheduler(keys_held_by_worker)
                if held:
                    size = self.payload_bytes
                    self.peak_worker_bytes = max(self.peak_worker_bytes,
                                                 max(held.values()) * size)
                    extra = (sum(held.values()) - distinct) * size / len(held)
                    self.peak_replica_bytes_per_worker = max(
                        self.peak_replica_bytes_per_worker, extra)


def keys_held_by_worker(dask_scheduler: Any = None) -> tuple[dict[str, int], int]:
    """Run on the scheduler: keys in memory per worker, and keys held anywhere."""
    held = {address: 0 for address in dask_scheduler.workers}
    distinct = 0
    for task in dask_scheduler.tasks.values():
        holders = task.who_has or ()
        if not holders:
            continue
        distinct += 1
        for worker in holders:
            held[worker.address] = held.get(worker.address, 0) + 1
    return held, distinct
