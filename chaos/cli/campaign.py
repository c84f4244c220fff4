"""`python -m chaos campaign`: the main job. Draws fault schedules, runs them against
every configuration of the grid on one LocalCluster, writes the report folder, checks
the gates, and exits 1 when a gate fails (2 on a usage error).

    python -m chaos campaign                                 # profile ci, ~2 min
    python -m chaos campaign --profile nightly --out build/reports/nightly
    python -m chaos campaign --targets resilience --grid 'replicas=0,2;registry=disk'
    python -m chaos campaign --baseline build/reports/chaos-<earlier>/summary.json
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from chaos.analysis import CheckedRun, load_gate_thresholds
from chaos.campaign import (
    DEFAULT_TARGETS,
    PROFILES,
    CampaignPlan,
    CampaignProgress,
    CampaignResult,
    RenewableCluster,
    finish_campaign,
    load_summary,
    parse_grid,
    plan_campaign,
    replay_runs,
    run_campaign,
)
from chaos.cli.clusters import add_cluster_options, backend_name, open_cluster
from chaos.cli.logs import logs_to
from chaos.errors import ChaosError, ClusterError
from chaos.harness import RefillPolicy
from chaos.history import DEFAULT_WORKERS
from chaos.spec import FAULT_KINDS
from reports import build_campaign_report, write_report

REPORTS_ROOT = Path("build") / "reports"
LOG_FILE = "campaign.log"


def add_campaign_command(commands: Any) -> None:
    """Add the `campaign` subcommand to the `python -m chaos` parser."""
    sub = commands.add_parser(
        "campaign", help="run a Hypothesis campaign over the grid, write the report, "
        "check the gates", description="Run Hypothesis-drawn fault schedules against every "
        "configuration of the grid on one LocalCluster, write the report folder and check "
        "the gates of pyproject's [tool.chaos.gates]. Exits 1 when a gate fails.",
    )
    sub.add_argument("--profile", choices=sorted(PROFILES), default="ci",
                     help="campaign size (default ci: "
                     f"{PROFILES['ci'].schedules} schedules + {PROFILES['ci'].clean_runs} "
                     "fault-free runs per configuration)")
    sub.add_argument("--targets", help="comma-separated targets (default: the profile's; "
                     f"{','.join(DEFAULT_TARGETS)} for ci); prc630 is a model of PR #630's "
                     "described behaviour, not PyRosettaCluster itself, and never gated")
    sub.add_argument("--grid", help="axes to cross, e.g. 'replicas=0,1,2,all;registry=none,"
                     "memory,disk;scatter=on,off' (the default: all of them); also "
                     "timeout=none,0.5, attempts=5,2 and notice=none,2 (the library's "
                     "preemption-notice plugin off, and on with 2 s of notice)")
    sub.add_argument("--out", help="report folder (default: build/reports/chaos-<timestamp>)")
    sub.add_argument("--baseline", help="an earlier campaign's summary.json: fail when "
                     "makespans grew past [tool.chaos.gates] regression_tolerance")
    sub.add_argument("--seed", type=int, help="campaign seed: draws the schedules "
                     "(default: fixed for ci, new for dev and nightly)")
    sub.add_argument("--schedules", type=int, help="fault schedules (overrides the profile)")
    sub.add_argument("--clean-runs", type=int, help="fault-free runs per configuration")
    sub.add_argument("--max-faults", type=int, help="faults per schedule: 1 to this")
    sub.add_argument("--kinds", help="fault kinds to draw from (default: the profile's; "
                     f"all: {','.join(FAULT_KINDS)})")
    sub.add_argument("--timeout", type=float, help="seconds before a run is declared hung")
    sub.add_argument("--no-cover", dest="cover", action="store_false", default=None,
                     help="leave out the coverage schedules (a fault of each kind aimed at "
                     "each window of a task's life), which the ci profile runs")
    sub.add_argument("--replays", type=int, default=0,
                     help="replay each failing run this many times at the end, and report "
                     "the share of replays that match their original (default 0: none)")
    sub.add_argument("--gates", help="pyproject.toml holding [tool.chaos.gates] (default: "
                     "the nearest one above the current directory)")
    workload = sub.add_argument_group("workload (default: 8 tasks x 2 steps of 50 ms)")
    workload.add_argument("--tasks", type=int)
    workload.add_argument("--steps", type=int)
    workload.add_argument("--step-seconds", type=float)
    workload.add_argument("--payload-bytes", type=int)
    add_cluster_options(sub)
    sub.set_defaults(workers=DEFAULT_WORKERS)
    sub.add_argument("--dask-logs", action="store_true",
                     help="show Dask's logging on the terminal instead of campaign.log")
    sub.set_defaults(command=campaign_main)


def campaign_main(args: argparse.Namespace) -> int:
    # Everything that can be refused is refused before a cluster starts.
    plan = _plan(args)
    thresholds = load_gate_thresholds(args.gates)
    baseline = load_summary(args.baseline) if args.baseline else None
    out = _fresh_folder(args.out)
    print(plan.describe())
    if plan.excluded:
        print(f"left out {len(plan.excluded)} configuration(s) the library refuses, e.g. "
              f"{plan.excluded[0]}")
    print(f"writing to {out}", flush=True)

    result = _run(plan, out, args)
    outcome = finish_campaign(result, thresholds=thresholds, baseline=baseline,
                              report=write_campaign_report)
    print(_table(outcome.summary))
    print(outcome.gates.render())
    print(f"{len(result.runs)} runs in {result.wall_seconds:.0f} s "
          f"({result.runs_per_minute:.0f} runs/minute); kept {len(outcome.kept_runs)} run "
          f"folders under {out / 'runs'}")
    if outcome.report is not None:
        print(f"report: {outcome.report}")
    return 0 if outcome.gates.passed else 1


def _run(plan: CampaignPlan, out: Path, args: argparse.Namespace) -> CampaignResult:
    progress = CampaignProgress(len(plan.runs()), stream=sys.stdout)
    # Silences the worker processes and Dask's stream handlers; campaign.log is written
    # by a handler that is no StreamHandler, which Dask's silencing leaves alone.
    dask_logs, replays = args.dask_logs, args.replays
    quiet: dict[str, Any] = {} if dask_logs else {"silence_logs": logging.CRITICAL}
    profile = PROFILES[plan.profile]
    with logs_to(out / LOG_FILE, enabled=not dask_logs):
        started = time.monotonic()
        with RenewableCluster(lambda: open_cluster(args, plan.workers, quiet,
                                                   default=profile.cluster)) as clusters:
            described = clusters.cluster.backend.describe()
            print(f"cluster ({described['backend']}, TLS {'on' if described['tls'] else 'off'}) "
                  f"of {plan.workers} workers up in {time.monotonic() - started:.1f} s; "
                  f"refill: {described['refill']}", flush=True)
            # Only a cluster the campaign started can be started afresh.
            renew = clusters.renew if backend_name(args, profile.cluster) != "address" else None
            result = run_campaign(plan, clusters.cluster, out, on_run=progress.advance,
                                  renew=renew)
            for why in result.renewals:
                print(f"the cluster stopped reporting results and was started afresh {why}",
                      flush=True)
            failing = [run.folder for run in result.runs
                       if run.verdict.failing and run.folder is not None]
            if replays > 0 and failing:
                print(f"replaying {len(failing)} failing run(s) {replays} time(s) each",
                      flush=True)
                try:
                    report = replay_runs(failing, clusters.cluster, replays, out / "replays",
                                         refill=plan.refill)
                except ClusterError as error:  # the runs' report matters more
                    print(f"replays stopped: {error}", flush=True)
                else:
                    print(report.render(), flush=True)
                    result = replace(result, replays=report.to_dict())
    progress.finish()
    return result


def write_campaign_report(result: CampaignResult) -> Path:
    """The campaign's index.html, from the runs it kept in memory."""
    plan = result.plan
    cluster = (result.runs[0].history[0].get("cluster") or {}) if result.runs else {}
    where = (f" on the {cluster['backend']!r} cluster (refill: {cluster['refill']})"
             if cluster else "")
    html = build_campaign_report(
        [CheckedRun(run.history, run.verdict, run.folder) for run in result.runs],
        title=f"Chaos campaign '{plan.profile}': exactly-once delivery under worker loss{where}",
        campaign_seed=plan.seed, replays=result.replays,
    )
    return write_report(html, result.out)


def _plan(args: argparse.Namespace) -> CampaignPlan:
    profile = PROFILES.get(args.profile)
    if profile is None:
        raise ChaosError(f"--profile {args.profile!r}: choose one of {', '.join(PROFILES)}.")
    targets = ([name.strip() for name in args.targets.split(",") if name.strip()]
               if args.targets else list(profile.targets))
    kinds = ([kind.strip() for kind in args.kinds.split(",") if kind.strip()]
             if args.kinds else list(profile.kinds))
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown or not kinds:
        raise ChaosError(f"--kinds {args.kinds!r}: use a comma-separated subset of "
                         f"{','.join(FAULT_KINDS)}.")
    pinned = {fault.kind for schedule in profile.pinned for fault in schedule.faults}
    if "scheduler-kill" in {*kinds, *pinned} and backend_name(args, profile.cluster) != "processes":
        where = ("the kinds to draw (--kinds)" if "scheduler-kill" in kinds
                 else f"the pinned schedules of profile {profile.name!r}")
        raise ChaosError(f"scheduler-kill, among {where}, needs --cluster processes: the "
                         "harness must own the scheduler to kill it and start another.")
    for name in ("schedules", "clean_runs", "max_faults", "tasks", "steps", "workers"):
        value, least = getattr(args, name), 0 if name in ("schedules", "clean_runs") else 1
        if value is not None and value < least:
            raise ChaosError(f"--{name.replace('_', '-')} {value}: use {least} or more.")
    fields = {"n_tasks": args.tasks, "n_steps": args.steps, "step_seconds": args.step_seconds,
              "payload_bytes": args.payload_bytes}
    overrides: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if args.steps is not None:
        overrides["fanout"] = 1
    return plan_campaign(
        args.profile, seed=args.seed, targets=targets,
        axes=parse_grid(args.grid if args.grid is not None else profile.grid),
        schedules=args.schedules, clean_runs=args.clean_runs, max_faults=args.max_faults,
        kinds=kinds, workload=overrides, run_timeout=args.timeout, workers=args.workers,
        refill=RefillPolicy(args.refill_delay), cover=args.cover,
    )


def _fresh_folder(requested: str | None) -> Path:
    if requested is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = REPORTS_ROOT / f"chaos-{stamp}"
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = REPORTS_ROOT / f"chaos-{stamp}-{suffix}"
    else:
        folder = Path(requested)
        if folder.exists() and any(folder.iterdir()):
            raise ChaosError(f"--out {folder} is not empty; a campaign writes a folder of its "
                             "own. Pass a new or empty folder, or leave --out out.")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _table(summary: dict[str, Any]) -> str:
    """One line per configuration: runs, failing runs, the violations, the overhead."""
    rows = ["configuration                          runs  failing  violations"
            "                      overhead (median, with faults vs fault-free)"]
    for slug, c in summary["configurations"].items():
        found = ", ".join(f"{kind} {v['count']}" for kind, v in c["violations"].items()
                          if v["count"]) or "-"
        point = (c.get("overhead") or {}).get("median_ratio")
        overhead = "-" if point is None else f"{point:+.0%}"
        rows.append(f"{slug:<38} {c['runs']:>4}  {c['failing_runs']:>7}  {found:<30}  "
                    f"{overhead:>8}")
    return "\n".join(rows)
