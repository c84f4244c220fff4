"""How long a preemption-safety check takes: the issue asks for "a few seconds for a chain
of two short protocols and three tasks".

    python benchmarks/preemption_check.py [--repeat 3]

Two protocols of 50 ms (one seeded from the task's kwargs), three tasks, in an empty
working directory: on a warm cluster (the pytest fixture's case) with and without the
3 kills, and with a cluster of the check's own (client=None: start and stop included).
Prints medians; the machine is shared, so compare the lines of one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from typing import Any

from chaos.testing import check_preemption_safety
from chaos.testing.workers import own_client

STEP_SECONDS = 0.05
TASKS = [{"task_id": i, "seed": i} for i in range(3)]


def fold(pose: str, *, seed: int, **kwargs: Any) -> str:
    time.sleep(STEP_SECONDS)
    return f"{pose}|{random.Random(seed).random():.6f}"


def relax(pose: str, **kwargs: Any) -> str:
    time.sleep(STEP_SECONDS)
    return pose + "|relaxed"


def timed(**options: Any) -> float:
    started = time.perf_counter()
    report = check_preemption_safety([fold, relax], TASKS, "pose", **options)
    assert report.safe, report.explain()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="preemption-check-"))
    serial = len(TASKS) * 2 * 3 * STEP_SECONDS
    print(f"2 protocols x {len(TASKS)} tasks, {STEP_SECONDS * 1000:.0f} ms steps; the 3 calls "
          f"per step alone take {serial:.2f} s one after the other")
    with own_client() as client:
        timed(client=client, kills=0)  # warm the workers up (imports, first pickles)
        for kills in (0, 3):
            times = [timed(client=client, kills=kills) for _ in range(args.repeat)]
            print(f"warm 2-worker cluster, kills={kills}: median {statistics.median(times):.2f} s"
                  f" (of {', '.join(f'{t:.2f}' for t in times)})")
    times = [timed(kills=3) for _ in range(args.repeat)]
    print(f"client=None (starts and stops its own cluster), kills=3: median "
          f"{statistics.median(times):.2f} s (of {', '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main()
