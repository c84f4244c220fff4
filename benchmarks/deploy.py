"""Deployment figures, measured side by side in one run on real `dask scheduler` /
`dask worker --nanny` processes over TLS (the harness's `processes` backend).

    python benchmarks/deploy.py [--schedules 6] [--notice 4] [--step-seconds 1] [--quick]
    nox -s bench_deploy -- --quick

Part 1, the notice plugin (`resilience.install_notice_handler`). The same preemption
schedules (SIGTERM to a worker's whole process tree, SIGKILL --notice seconds later,
each landing mid-way through a step) run against the library with and without the
plugin, alternating which goes first from one schedule to the next. Per side:

  wasted work   worker-seconds of executions whose result did not count (cut short,
                lost with the worker, or duplicated), summed over the schedules
  resubmitted   steps the library had to submit again
  recovery      seconds from the fault landing (the whole tree gone) to the delivery
                of what it disturbed: median and worst over disturbed steps
  makespan      median over the schedules

Part 2, the PR #630 model (`prc630`: a model of the behaviour PR #630 *describes*, not
PyRosettaCluster) against the library, on the same schedules: the deploy profile's
pinned preemption and scheduler kill, then schedules drawn from its kinds, over the
grid replicas x registry. Per configuration and target: runs that broke exactly-once,
outputs lost silently, outputs duplicated, and failures reported loudly.

Timing on a shared 2-core machine is noisy; the two sides of each part share the
cluster, the schedules and the period of time, so compare them with each other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from chaos import AtStep, ChaosCluster, Fault, FaultSchedule, Workload, check_history, run_schedule
from chaos.analysis import CheckedRun, recovery_table, run_table
from chaos.campaign import PROFILES, parse_grid, plan_campaign, run_campaign
from resilience import install_notice_handler, uninstall_notice_handler

VIOLATIONS = ("lost", "duplicated", "unexpected", "corrupted")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=6, help="preemption schedules "
                        "(part 1) and drawn schedules besides the 2 pinned ones (part 2)")
    parser.add_argument("--notice", type=float, default=4.0,
                        help="seconds from SIGTERM to SIGKILL (clouds: 30-120; compressed)")
    parser.add_argument("--step-seconds", type=float, default=1.0,
                        help="length of one protocol step in part 1")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="2 schedules each: a smoke run of a few minutes")
    parser.add_argument("--skip-part2", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.schedules = 2
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    started = time.monotonic()
    with ChaosCluster.open("processes", args.workers) as cluster:
        print(f"cluster: {cluster.backend.describe()}", flush=True)
        notice_plugin(cluster, args)
        if not args.skip_part2:
            baseline_losses(cluster, args)
    print(f"\ntook {time.monotonic() - started:.0f} s; load average after: "
          f"{os.getloadavg()[0]:.1f}")
    return 0


# ---------------------------------------------------------------------------- part 1


def preemptions(count: int, notice: float) -> list[FaultSchedule]:
    """One preemption each, mid-way through step 0 or 1 of the 1st to 3rd task to start it."""
    return [FaultSchedule((Fault("preempt", AtStep(step=i % 2, nth=1 + (i // 2) % 3,
                                                   fraction=0.5), notice=notice),), seed=i)
            for i in range(count)]


def notice_plugin(cluster: ChaosCluster, args: argparse.Namespace) -> None:
    workload = Workload(n_tasks=6, n_steps=2, step_seconds=args.step_seconds,
                        payload_bytes=100_000, seed=1)
    config = {"task_registry": "memory", "max_task_replicas": 0}
    print(f"\n== Part 1: preemption with a {args.notice:g} s notice, with and without the "
          f"notice plugin ==\nworkload: {workload.n_tasks} tasks x {workload.n_steps} steps "
          f"of {workload.step_seconds:g} s; library: {config}", flush=True)
    runs: dict[bool, list[CheckedRun]] = {False: [], True: []}
    for number, schedule in enumerate(preemptions(args.schedules, args.notice)):
        for plugin in ((False, True) if number % 2 == 0 else (True, False)):
            cluster.settle(timeout=120)
            if plugin:
                install_notice_handler(cluster.client, notice=args.notice)
            try:
                record = run_schedule(schedule, "resilience", config, workload, cluster,
                                      timeout=120)
            finally:
                if plugin:
                    uninstall_notice_handler(cluster.client)
            verdict = check_history(record.history, workload.oracle())
            runs[plugin].append(CheckedRun(tuple(record.history), verdict))
            [fault] = [e for e in record.history if e["type"] == "fault"] or [{}]
            print(f"  schedule {number} {'with   ' if plugin else 'without'} plugin: "
                  f"{verdict.outcome}, makespan {record.makespan:.1f} s, SIGKILL needed: "
                  f"{fault.get('killed_after_notice')}", flush=True)
    rows = [_notice_row(name, runs[plugin])
            for name, plugin in (("without plugin", False), ("with plugin", True))]
    print("\n" + pd.DataFrame(rows).set_index("side").to_string())


def _notice_row(side: str, runs: list[CheckedRun]) -> dict[str, Any]:
    table = run_table(runs)
    recovery = recovery_table(run.history for run in runs)
    delivered = recovery["to_deliver"].dropna()
    return {
        "side": side,
        "runs": len(runs),
        "valid": int((table["outcome"] == "valid").sum()),
        "sigkill_needed": sum(bool(e.get("killed_after_notice")) for run in runs
                              for e in run.history if e["type"] == "fault"),
        "wasted_s": round(float(table["wasted_seconds"].sum()), 2),
        "busy_s": round(float(table["busy_seconds"].sum()), 2),
        "resubmitted": sum(e.get("reason") != "new" for run in runs for e in run.history
                           if e["type"] == "submit"),
        "disturbed": len(recovery),
        "recovery_median_s": _round(delivered.median() if len(delivered) else None),
        "recovery_max_s": _round(delivered.max() if len(delivered) else None),
        "makespan_median_s": _round(statistics.median(table["makespan"])),
    }


# ---------------------------------------------------------------------------- part 2


def baseline_losses(cluster: ChaosCluster, args: argparse.Namespace) -> None:
    profile = PROFILES["deploy"]
    plan = plan_campaign("deploy", targets=("resilience", "prc630"),
                         axes=parse_grid("replicas=0,2;registry=none,disk;scatter=on"),
                         schedules=args.schedules, clean_runs=0, kinds=profile.kinds)
    print(f"\n== Part 2: the prc630 model (PR #630's described behaviour, not "
          f"PyRosettaCluster) against the library ==\n{plan.describe()}", flush=True)
    for number, schedule in enumerate(plan.schedules):
        print(f"  schedule {number}: {'; '.join(f.describe() for f in schedule.faults)}")
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as out:
        result = run_campaign(plan, cluster, out, on_run=lambda run: print(
            f"  {run.spec.run_id}: {run.verdict.outcome}", flush=True))
        checked = [CheckedRun(tuple(run.history), run.verdict) for run in result.runs]
    table = run_table(checked)
    for kind in VIOLATIONS:
        if kind not in table:
            table[kind] = 0
    table = table.fillna({kind: 0 for kind in VIOLATIONS})
    table["broke_exactly_once"] = (table[list(VIOLATIONS)].sum(axis=1) > 0).astype(int)
    table["hung"] = (table["status"] == "hung").astype(int)
    grouped = table.groupby(["replicas", "registry", "target"]).agg(
        runs=("run_id", "count"), broke_exactly_once=("broke_exactly_once", "sum"),
        lost_silently=("lost", "sum"), duplicated=("duplicated", "sum"),
        reported_failed=("reported_failures", "sum"), hung=("hung", "sum"),
    ).astype(int)
    print("\n" + grouped.unstack("target").swaplevel(axis=1).sort_index(axis=1).to_string())
    totals = table.groupby("target")[["broke_exactly_once", "lost", "duplicated",
                                      "reported_failures"]].sum().astype(int)
    print("\ntotals over every configuration and schedule:\n" + totals.to_string())


def _round(value: float | None) -> float | None:
    return None if value is None or value != value else round(float(value), 2)


if __name__ == "__main__":
    raise SystemExit(main())
