"""The head node over a long run: client memory growth and throughput, against raw Dask.

    python benchmarks/client_memory.py [--tasks 100000] [--variants raw-dask,none,memory,disk]

One LocalCluster (2 workers x 1 thread). Each variant runs `--tasks` one-step no-op
tasks, drawn from a generator, in a client process of its own (a fresh interpreter
connected to the same scheduler), so that one variant's memory never shows in
another's and the scheduler's own bookkeeping (in this process) is not counted:

  raw-dask   client.map of new tasks as batches complete, 1024 in flight, as_completed
  none       ResilientCluster(task_registry=None).generate(...)
  memory     task_registry="memory"
  disk       task_registry="disk" (its ledger of delivered outputs is on disk)

The client's resident memory (RSS, after a garbage collection) is sampled at 20 % and
at 100 % of the outputs delivered: the growth between them is what each delivered task
leaves behind. Throughput is the library's wall time over raw Dask's, measured in the
same run (<= 1.0 means no slower). It asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psutil

WINDOW = 1024  # futures in flight: the library's default max_in_flight
SAMPLE_AT = 0.2  # the first RSS sample, as a fraction of the run


def noop(payload: Any, task_id: Any = None, **_: Any) -> int:
    return 0


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def tasks(n: int) -> Iterator[dict[str, Any]]:
    return ({"task_id": i} for i in range(n))


def run_raw(client: Any, n: int, samples: dict[str, float]) -> None:
    """Raw Dask at its best for a generator: at most WINDOW futures in flight, each batch
    of completions replaced by one `client.map` of as many new tasks."""
    from distributed import as_completed

    source = tasks(n)
    pending = as_completed(submit_raw(client, source, WINDOW))
    done = 0
    for batch in pending.batches():
        for future in batch:
            future.result()
            future.release()
            done += 1
            sample(done, n, samples)
        pending.update(submit_raw(client, source, len(batch)))


def submit_raw(client: Any, source: Iterator[dict[str, Any]], count: int) -> list[Any]:
    chunk = list(itertools.islice(source, count))
    if not chunk:
        return []
    return list(client.map(noop, [None] * len(chunk), [task["task_id"] for task in chunk],
                           pure=False))


def run_library(client: Any, n: int, registry: str | None, samples: dict[str, float]) -> None:
    from resilience import ResilientCluster

    done = 0
    cluster = ResilientCluster(client, tasks(n), input=None, task_registry=registry,
                               max_in_flight=WINDOW)
    for _ in cluster.generate(noop):
        done += 1
        sample(done, n, samples)
    assert done == n, f"delivered {done} of {n}"


def sample(done: int, n: int, samples: dict[str, float]) -> None:
    if done == max(1, int(n * SAMPLE_AT)):
        samples["at_20"] = rss_mb()
        samples["t_20"] = time.perf_counter()
    if done == n:
        samples["at_100"] = rss_mb()


def client_main(address: str, variant: str, n: int) -> None:
    """In the child process: run one variant, print its figures as one JSON line."""
    from distributed import Client

    with Client(address) as client:
        client.submit(noop, None, pure=False).result()  # warm-up: connections, imports
        samples: dict[str, float] = {"start": rss_mb()}
        started = time.perf_counter()
        if variant == "raw-dask":
            run_raw(client, n, samples)
        else:
            run_library(client, n, None if variant == "none" else variant, samples)
        elapsed = time.perf_counter() - started
    print(json.dumps({"variant": variant, "seconds": elapsed, **samples,
                      "late_seconds": started + elapsed - samples["t_20"]}))


def run_variant(address: str, variant: str, n: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--connect", address, "--variant", variant,
         "--tasks", str(n)],
        capture_output=True, text=True, check=False, timeout=3600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"variant {variant} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


def show(results: list[dict[str, Any]], n: int) -> None:
    raw = next((r for r in results if r["variant"] == "raw-dask"), None)
    print(f"\n  {'variant':<10}{'seconds':>9}{'x raw':>7}{'tasks/s':>9}{'RSS@20% MB':>12}"
          f"{'RSS@100% MB':>13}{'growth MB':>11}{'B/task':>8}")
    for r in results:
        growth = r["at_100"] - r["at_20"]
        per_task = growth * 2**20 / (n * (1 - SAMPLE_AT))
        ratio = r["seconds"] / raw["seconds"] if raw else float("nan")
        print(f"  {r['variant']:<10}{r['seconds']:>9.1f}{ratio:>7.2f}{n / r['seconds']:>9.0f}"
              f"{r['at_20']:>12.1f}{r['at_100']:>13.1f}{growth:>+11.1f}{per_task:>8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--variants", default="raw-dask,none,memory,disk")
    parser.add_argument("--connect", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.connect:
        client_main(args.connect, args.variant, args.tasks)
        return

    import dask
    from distributed import LocalCluster

    variants = [v for v in args.variants.split(",") if v]
    print(f"client memory and throughput: {args.tasks} one-step no-op tasks from a generator, "
          f"{WINDOW} in flight, 2 workers x 1 thread, each variant in a client process of "
          f"its own (dask {dask.__version__})")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        results = []
        for variant in variants:
            results.append(run_variant(cluster.scheduler_address, variant, args.tasks))
            print(f"  {variant}: {results[-1]['seconds']:.1f} s", flush=True)
    show(results, args.tasks)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
