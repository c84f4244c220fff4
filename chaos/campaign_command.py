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
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chaos.campaign import (
    DEFAULT_TARGETS,
    PROFILES,
    CampaignPlan,
    CampaignResult,
    plan_campaign,
    run_campaign,
)
from chaos.campaign_folder import finish_campaign, load_summary
from chaos.campaign_progress import CampaignProgress
from chaos.cluster import ChaosCluster
from chaos.errors import ChaosError
from chaos.faults import FAULT_KINDS
from chaos.gates import load_gate_thresholds
from chaos.grid import parse_grid
from chaos.replay import DEFAULT_WORKERS

REPORTS_ROOT = Path("build") / "reports"
LOG_FILE = "campaign.log"
WORKER_LOG_LEVEL = "DASK_LOGGING__DISTRIBUTED"


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
    sub.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                     help="comma-separated targets (default: resilience,dask-raw)")
    sub.add_argument("--grid", help="axes to cross, e.g. 'replicas=0,1,2,all;registry=none,"
                     "memory,disk;scatter=on,off' (the default: all of them)")
    sub.add_argument("--out", help="report folder (default: build/reports/chaos-<timestamp>)")
    sub.add_argument("--baseline", help="an earlier campaign's summary.json: fail when "
                     "makespans grew past [tool.chaos.gates] regression_tolerance")
    sub.add_argument("--seed", type=int, help="campaign seed: draws the schedules "
                     "(default: fixed for ci, new for dev and nightly)")
    sub.add_argument("--schedules", type=int, help="fault schedules (overrides the profile)")
    sub.add_argument("--clean-runs", type=int, help="fault-free runs per configuration")
    sub.add_argument("--max-faults", type=int, help="faults per schedule: 1 to this")
    sub.add_argument("--kinds", default=",".join(FAULT_KINDS),
                     help=f"fault kinds to draw from (default: {','.join(FAULT_KINDS)})")
    sub.add_argument("--timeout", type=float, help="seconds before a run is declared hung")
    sub.add_argument("--gates", help="pyproject.toml holding [tool.chaos.gates] (default: "
                     "the nearest one above the current directory)")
    workload = sub.add_argument_group("workload (default: 8 tasks x 2 steps of 50 ms)")
    workload.add_argument("--tasks", type=int)
    workload.add_argument("--steps", type=int)
    workload.add_argument("--step-seconds", type=float)
    workload.add_argument("--payload-bytes", type=int)
    sub.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                     help=f"LocalCluster workers (default {DEFAULT_WORKERS})")
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

    result = _run(plan, out, dask_logs=args.dask_logs)
    outcome = finish_campaign(result, thresholds=thresholds, baseline=baseline)
    print(_table(outcome.summary))
    print(outcome.gates.render())
    print(f"{len(result.runs)} runs in {result.wall_seconds:.0f} s "
          f"({result.runs_per_minute:.0f} runs/minute); kept {len(outcome.kept_runs)} run "
          f"folders under {out / 'runs'}")
    if outcome.report is not None:
        print(f"report: {outcome.report}")
    return 0 if outcome.gates.passed else 1


def _run(plan: CampaignPlan, out: Path, *, dask_logs: bool) -> CampaignResult:
    progress = CampaignProgress(len(plan.runs()), stream=sys.stdout)
    # Silences the worker processes and Dask's stream handlers; campaign.log is written
    # by a handler that is no StreamHandler, which Dask's silencing leaves alone.
    quiet: dict[str, Any] = {} if dask_logs else {"silence_logs": logging.CRITICAL}
    with _logs_to(out / LOG_FILE, enabled=not dask_logs):
        started = time.monotonic()
        with ChaosCluster.local(plan.workers, **quiet) as cluster:
            print(f"cluster of {plan.workers} workers up in {time.monotonic() - started:.1f} s",
                  flush=True)
            result = run_campaign(plan, cluster, out, on_run=progress.advance)
    progress.finish()
    return result


def _plan(args: argparse.Namespace) -> CampaignPlan:
    targets = [name.strip() for name in args.targets.split(",") if name.strip()]
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown or not kinds:
        raise ChaosError(f"--kinds {args.kinds!r}: use a comma-separated subset of "
                         f"{','.join(FAULT_KINDS)}.")
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
        args.profile, seed=args.seed, targets=targets, axes=parse_grid(args.grid),
        schedules=args.schedules, clean_runs=args.clean_runs, max_faults=args.max_faults,
        kinds=kinds, workload=overrides, run_timeout=args.timeout, workers=args.workers,
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


@contextlib.contextmanager
def _logs_to(path: Path, *, enabled: bool) -> Iterator[None]:
    """Send Dask's and the library's logging to `path` rather than the terminal, where it
    would tear the progress line: faults make Dask log errors by design."""
    if not enabled:
        yield
        return
    handler = _LogFile(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.WARNING)
    loggers = [logging.getLogger(name) for name in ("distributed", "resilience", "chaos")]
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    root = logging.getLogger()
    root_handlers = root.handlers[:]
    # Worker processes log to the terminal, and a closing worker undoes `silence_logs`
    # before its last messages; they read this when they import distributed.
    saved_env = os.environ.get(WORKER_LOG_LEVEL)
    os.environ[WORKER_LOG_LEVEL] = "error"
    try:
        for logger in loggers:
            logger.handlers = [handler]
            logger.setLevel(logging.WARNING)
            logger.propagate = False
        root.handlers = [handler]
        yield
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        root.handlers = root_handlers
        handler.close()
        if saved_env is None:
            os.environ.pop(WORKER_LOG_LEVEL, None)
        else:
            os.environ[WORKER_LOG_LEVEL] = saved_env


class _LogFile(logging.Handler):
    """Appends records to a file. Not a StreamHandler on purpose: LocalCluster's
    `silence_logs` re-levels every StreamHandler of the "distributed" logger."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = path.open("a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._file.write(self.format(record) + "\n")
            self._file.flush()
        except Exception:  # logging must never break the campaign
            self.handleError(record)

    def close(self) -> None:
        self._file.close()
        super().close()


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
