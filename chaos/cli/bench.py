"""`python -m chaos bench`: campaign speed, in schedules of 1 to 3 faults per minute, on one
reused cluster.

    python -m chaos bench                       # resilience, memory registry
    python -m chaos bench --target dask-raw --schedules 120

The workload is issue 4's: 8 tasks x 2 steps of 50 ms (sleep), 100 KB payloads, on a
LocalCluster of 3 workers x 1 thread. Schedule i is `FaultSchedule.generate(i, 1 + i % 3)`.
It prints the rate, where the time went, and the verdicts; it asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import logging
import statistics
import time
from typing import Any

from chaos.errors import ClusterError
from chaos.harness import ChaosCluster, RunRecord, TargetConfig, run_schedule
from chaos.judge import check_history
from chaos.spec import DEFAULT_KINDS, FaultSchedule
from chaos.workload import Workload


def add_bench_command(commands: Any) -> None:
    """Add the `bench` subcommand to the `python -m chaos` parser."""
    parser = commands.add_parser("bench", help="measure campaign speed (schedules/minute)",
                                 description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="resilience")
    parser.add_argument("--registry", default="memory", choices=["none", "memory", "disk"])
    parser.add_argument("--replicas", type=int, default=0)
    parser.add_argument("--schedules", type=int, default=60)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS))
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.set_defaults(command=bench_main)


def bench_main(args: argparse.Namespace) -> int:

    raw = args.target == "dask-raw"
    config = TargetConfig(max_task_replicas=0 if raw else args.replicas,
                          task_registry=None if raw or args.registry == "none" else args.registry)
    workload = Workload(n_tasks=8, n_steps=2, step_seconds=0.05, payload_bytes=100_000)
    kinds = [kind for kind in args.kinds.split(",") if kind]
    statuses: collections.Counter[str] = collections.Counter()
    verdicts: collections.Counter[str] = collections.Counter()
    durations: list[float] = []
    phases: dict[str, list[float]] = collections.defaultdict(list)
    injected = 0
    recorded: dict[str, object] = {}

    started = time.perf_counter()
    with ChaosCluster.local(args.workers, silence_logs=logging.CRITICAL) as cluster:
        ready = time.perf_counter()
        for i in range(args.schedules):
            schedule = FaultSchedule.generate(i, 1 + i % 3, task_ids=workload.task_ids(),
                                              n_steps=workload.n_steps, kinds=kinds)
            began = time.perf_counter()
            try:
                record = run_schedule(schedule, args.target, config, workload, cluster,
                                      timeout=args.timeout)
            except ClusterError as error:  # the cluster is unusable: report what ran so far
                print(f"schedule {i}: {error}")
                break
            durations.append(time.perf_counter() - began)
            for phase, seconds in record.phases.items():
                phases[phase].append(seconds)
            statuses[record.status] += 1
            recorded = record.config
            injected += record.faults_injected
            verdicts[_verdict(record, workload)] += 1
        elapsed = time.perf_counter() - ready
    total = time.perf_counter() - started

    print(f"target {args.target}, config {recorded}")
    done = len(durations)
    print(f"{done} schedules (1-3 faults each, {injected} injected) in {elapsed:.1f} s "
          f"on one cluster (+{total - elapsed:.1f} s to start and stop it)")
    print(f"=> {60 * done / elapsed:.1f} schedules/minute "
          f"(goal 30, ambitious 60)")
    print(f"per run: median {statistics.median(durations):.2f} s, "
          f"max {max(durations):.2f} s; median by phase: "
          + ", ".join(f"{k} {statistics.median(v):.3f} s" for k, v in phases.items()))
    print(f"run status: {dict(statuses)}; checker verdicts: {dict(verdicts)}")
    return 0


def _verdict(record: RunRecord, workload: Workload) -> str:
    return check_history(record.history, workload.oracle()).outcome
