"""A client process for the resume tests: one durable run, which the test SIGKILLs anywhere.

    python tests/resilience/resume_client.py ADDRESS OUTPUT TASKS

ADDRESS is a scheduler's address, or "local" for a LocalCluster inside this process
(so that killing the process group kills the whole head node). The protocols are
pure: `expected_outputs` gives the value every output must have.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

STEP_SECONDS = 0.05
FAN_OUT = 2  # outputs of the first protocol


def fold(payload: str, *, task_id: str, seed: int, **_: Any) -> list[str]:
    time.sleep(STEP_SECONDS)
    return [f"{payload}|{task_id}.fold{i}:{seed * (i + 1)}" for i in range(FAN_OUT)]


def polish(payload: str, *, task_id: str, seed: int, **_: Any) -> str:
    time.sleep(STEP_SECONDS)
    return f"{payload}|{task_id}.polish:{seed % 7}"


def tasks(count: int) -> Iterator[dict[str, Any]]:
    """A generator, as in production: the run consumes it lazily."""
    return ({"task_id": f"t{i:03d}", "seed": i, "note": "decoy"} for i in range(count))


def expected_outputs(count: int, initial: str = "start") -> dict[tuple[str, tuple[int, ...]], str]:
    expected = {}
    for task in tasks(count):
        for i, folded in enumerate(fold(initial, **task)):
            expected[(task["task_id"], (i, 0))] = polish(folded, **task)
    return expected


def main(address: str, output: str, count: int) -> None:
    from distributed import Client, LocalCluster

    from resilience import ResilientCluster

    cluster = None
    if address == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        address = cluster.scheduler_address
    with Client(address, timeout=30) as client:
        run = ResilientCluster(client, tasks(count), input="start", task_registry="disk",
                               output_path=output, max_attempts=50, max_in_flight=6,
                               worker_wait_timeout=60)
        print("started", flush=True)
        delivered = sum(1 for _ in run.generate([fold, polish]))
        summary = run.summary
        print(json.dumps({"delivered": delivered,
                          "previously_delivered": summary.previously_delivered,
                          "failed": {str(k): v for k, v in summary.failed.items()}}),
              flush=True)
    if cluster is not None:
        cluster.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
