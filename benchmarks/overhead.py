"""What resilience costs: makespans side by side, on one cluster, as ratios to raw Dask.

    python benchmarks/overhead.py [--tasks 2000] [--step-ms 5] [--input-kb 100] [--repeats 3]

One LocalCluster (2 workers x 1 thread) runs every variant, interleaved over the
repeats so that drift on a shared machine hits them all alike; the median is shown.

Part 1, one protocol, the same 100 KB input for every task (PyRosettaCluster's
`input_packed_pose`):
  raw-dask      submit(step, input_inline, kwargs) per task, then as_completed
  prc-pattern   PyRosettaCluster's way: one scatter and one replicate(n=2) per task
  disk+2        ResilientCluster(task_registry="disk", max_task_replicas=2), AMM guarded
  disk+2+out    the same with output_path: every output fsynced to its own file, once,
                with a scorefile line (a fresh folder per run, removed after)
  memory+0      ResilientCluster(task_registry="memory", max_task_replicas=0)

Part 2, a chain of two protocols where every step-1 input is a distinct 100 KB
output of step 0 (so the registry really stores and re-places each one):
  raw-dask      submit(step1, submit(step0, ...)): data stays on the workers
  disk+2        the library: each output comes back, is registered, re-placed
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import dask
from distributed import Client, LocalCluster, as_completed

from resilience import ResilientCluster


def step(payload: bytes, seconds: float = 0.005, size: int = 0, **_: object) -> bytes:
    time.sleep(seconds)
    return os.urandom(size) if size else payload[:16]


def raw_dask(client: Client, n: int, payload: bytes, seconds: float) -> None:
    futures = [client.submit(step, payload, seconds, task_id=i, pure=False) for i in range(n)]
    for future in as_completed(futures):
        future.result()
        future.release()


def prc_pattern(client: Client, n: int, payload: bytes, seconds: float) -> None:
    futures = []
    for i in range(n):
        [scattered] = client.scatter([payload], hash=False)
        client.replicate([scattered], n=2)
        futures.append(client.submit(step, scattered, seconds, task_id=i, pure=False))
    for future in as_completed(futures):
        future.result()
        future.release()


def library(registry: str, replicas: int,
            output: bool = False) -> Callable[[Client, int, bytes, float], None]:
    def run(client: Client, n: int, payload: bytes, seconds: float) -> None:
        tasks = [{"task_id": i, "seconds": seconds} for i in range(n)]
        with tempfile.TemporaryDirectory() as folder:
            summary = ResilientCluster(
                client, tasks, input=payload, task_registry=registry,
                max_task_replicas=replicas, output_path=folder if output else None,
            ).distribute(step)
        assert summary.delivered == n

    return run


def raw_chain(client: Client, n: int, payload: bytes, seconds: float) -> None:
    size = len(payload)
    futures = [
        client.submit(step, client.submit(step, payload, seconds, size, task_id=i, pure=False),
                      seconds, task_id=i, pure=False)
        for i in range(n)
    ]
    for future in as_completed(futures):
        future.result()
        future.release()


def library_chain(client: Client, n: int, payload: bytes, seconds: float) -> None:
    tasks = [{"task_id": i, "seconds": seconds, "size": len(payload)} for i in range(n)]
    summary = ResilientCluster(client, tasks, input=payload, task_registry="disk",
                               max_task_replicas=2).distribute([step, step])
    assert summary.delivered == n


def measure(client: Client, variants: dict[str, Callable[..., None]], n: int, payload: bytes,
            seconds: float, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            started = time.perf_counter()
            run(client, n, payload, seconds)
            times[name].append(time.perf_counter() - started)
    return times


def show(title: str, times: dict[str, list[float]], n: int) -> None:
    baseline = statistics.median(times["raw-dask"])
    print(f"\n{title}")
    print(f"  {'variant':<14}{'median s':>10}{'per task ms':>13}{'x raw dask':>12}   runs")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"  {name:<14}{median:>10.2f}{1000 * median / n:>13.2f}{median / baseline:>12.2f}"
              f"   {', '.join(f'{t:.2f}' for t in runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--step-ms", type=float, default=5.0)
    parser.add_argument("--input-kb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    payload = os.urandom(args.input_kb * 1024)
    seconds = args.step_ms / 1000

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.submit(step, b"warm-up", 0).result()
        print(f"{args.tasks} tasks x {args.step_ms:g} ms, {args.input_kb} KB input, 2 workers x 1 "
              f"thread, median of {args.repeats} (dask {dask.__version__})")
        single = measure(client, {
            "raw-dask": raw_dask,
            "prc-pattern": prc_pattern,
            "disk+2": library("disk", 2),
            "disk+2+out": library("disk", 2, output=True),
            "memory+0": library("memory", 0),
        }, args.tasks, payload, seconds, args.repeats)
        show("Part 1: one protocol, a shared input", single, args.tasks)
        chained = measure(client, {"raw-dask": raw_chain, "disk+2": library_chain},
                          args.tasks, payload, seconds, args.repeats)
        show("Part 2: two protocols, distinct step-1 inputs", chained, args.tasks)


if __name__ == "__main__":
    main()
