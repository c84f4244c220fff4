"""A protocol chain on a LocalCluster whose workers are SIGKILLed mid-run.

    python examples/preemption_demo.py [--seed 1]

It runs the same 12 tasks through two protocols twice, killing a random worker
every second or so (seeded): first as plain PyRosettaCluster-style defaults (no
replicas, no registry), then with a disk registry and two replicas. The first loses
tasks and says which and why; the second delivers every output exactly once.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import threading
import time
from typing import Any

from distributed import Client, LocalCluster

from resilience import ResilientCluster, TaskFailures


def fold(payload: str, *, task_id: int, **_: Any) -> list[str]:
    """Step 1: two decoys per task, after a short computation."""
    time.sleep(0.4)
    return [f"{payload}|fold{task_id}.{decoy}" for decoy in range(2)]


def relax(payload: str, **_: Any) -> str:
    """Step 2: refine a decoy."""
    time.sleep(0.4)
    return payload + "|relaxed"


class Preemptor:
    """Kills a random worker process every `interval` seconds, until stopped."""

    def __init__(self, client: Client, seed: int, interval: float = 1.2) -> None:
        self._client, self._random, self._interval = client, random.Random(seed), interval
        self._stop = threading.Event()
        self.kills = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Preemptor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            pids = self._client.run(os.getpid, on_error="return")
            alive = sorted(pid for pid in pids.values() if isinstance(pid, int))
            if alive:
                os.kill(self._random.choice(alive), signal.SIGKILL)
                self.kills += 1


def run(client: Client, seed: int, title: str, **settings: Any) -> None:
    print(f"\n== {title}: {settings or 'no replicas, no registry'}")
    tasks = [{"task_id": i} for i in range(12)]
    started = time.monotonic()
    delivered = 0
    with Preemptor(client, seed) as preemptor:
        try:
            for output in ResilientCluster(client, tasks, input="pose", **settings).generate(
                [fold, relax]
            ):
                delivered += 1
                print(f"  delivered task {output.task_id:>2} decoy {output.index}"
                      f"  attempts={output.step_attempts}")
        except TaskFailures as failures:
            print(f"  {len(failures.failed)} task(s) could not be delivered:")
            for task_id, reason in sorted(failures.failed.items()):
                print(f"    task {task_id}: {reason.splitlines()[0][:150]}")
    print(f"  -> {delivered} of 24 outputs delivered in {time.monotonic() - started:.1f} s, "
          f"{preemptor.kills} workers killed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        run(client, args.seed, "Unprotected")
        client.wait_for_workers(3, timeout=30)
        run(client, args.seed, "Protected", task_registry="disk", max_task_replicas=2)


if __name__ == "__main__":
    main()
