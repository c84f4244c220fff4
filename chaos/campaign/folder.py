"""A campaign's report folder, once its runs are done:

    DIR/index.html       the HTML reliability report (rendered by the caller: the
                         command line passes `reports`' renderer as `report=`)
    DIR/summary.json     per configuration: runs, violations by class, overhead figures
    DIR/gates.json       every gate: measured value, threshold, pass/fail
    DIR/campaign.log     what Dask and the library logged during the campaign
    DIR/runs/<run_id>/   history.jsonl, schedule.json, summary.json of every failing
                         run, of every run with a recovery slower than
                         SLOW_RECOVERY, and of a sample of passing ones, so that
                         `python -m chaos replay DIR/runs/<run_id>/schedule.json --out D2`
                         runs it again

The other passing runs' folders are removed (their verdicts stay in the report and the
summary): a nightly campaign would otherwise leave thousands of them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chaos.analysis import (
    GateReport,
    GateThresholds,
    evaluate_gates,
    recovery_figures,
    recovery_table,
    summarise_campaign,
)
from chaos.campaign.execute import RUNS_FOLDER, CampaignResult, CampaignRun
from chaos.errors import ChaosError

# Renders the report of a finished campaign into its folder; returns the page's path.
ReportWriter = Callable[[CampaignResult], Path]

SUMMARY_FILE = "summary.json"
GATES_FILE = "gates.json"


@dataclass(frozen=True)
class CampaignOutcome:
    folder: Path
    report: Path | None  # None when no run finished (nothing to report)
    summary: dict[str, Any]
    gates: GateReport
    kept_runs: tuple[str, ...]


def finish_campaign(result: CampaignResult, *, thresholds: GateThresholds | None = None,
                    baseline: Mapping[str, Any] | None = None,
                    report: ReportWriter | None = None) -> CampaignOutcome:
    """Prune the passing runs not sampled, then write summary.json and gates.json into
    the campaign's folder, and the report with `report` when given."""
    result = prune_runs(result)
    summary = summarise_campaign(result.runs, campaign_description(result),
                                 [c.slug for c in result.plan.configurations])
    if result.replays is not None:
        summary["replay"] = dict(result.replays)
    gates = evaluate_gates(summary, thresholds, baseline=baseline)
    folder = result.out
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / GATES_FILE).write_text(json.dumps(gates.to_dict(), indent=2) + "\n",
                                     encoding="utf-8")
    page = report(result) if report is not None and result.runs else None
    kept = tuple(run.run_id for run in result.runs if run.folder is not None)
    return CampaignOutcome(folder, page, summary, gates, kept)


SLOW_RECOVERY = 1.0  # seconds (issue 12's goal for the p99): a valid run slower is kept


def prune_runs(result: CampaignResult) -> CampaignResult:
    """Keep every failing run's folder, every run with a recovery slower than
    SLOW_RECOVERY (the recovery gate's worst case is one of them), and the first
    `keep_passing` passing runs with faults of each configuration (the ones the report
    draws timelines of)."""
    kept_per_configuration: dict[str, int] = {}
    runs: list[CampaignRun] = []
    runs_dir = (result.out / RUNS_FOLDER).resolve()
    for run in result.runs:
        slug = run.spec.configuration.slug
        keep = not run.verdict.valid or _slowest_recovery(run) > SLOW_RECOVERY
        if not keep and not run.spec.clean:
            keep = kept_per_configuration.get(slug, 0) < result.plan.keep_passing
            kept_per_configuration[slug] = kept_per_configuration.get(slug, 0) + keep
        if keep or run.folder is None:
            runs.append(run)
            continue
        if run.folder.resolve().parent == runs_dir:  # never remove anything else
            shutil.rmtree(run.folder, ignore_errors=True)
        runs.append(replace(run, folder=None))
    return replace(result, runs=tuple(runs))


def _slowest_recovery(run: CampaignRun) -> float:
    if run.spec.clean:
        return 0.0
    worst = recovery_figures(recovery_table([run.history]))["to_deliver_max"]
    return worst or 0.0  # the recovery gate's own figure; None: nothing disturbed


def load_summary(path: str | Path) -> dict[str, Any]:
    """A campaign summary.json (or the one in a campaign folder), for `--baseline`."""
    file = Path(path)
    if file.is_dir():
        file = file / SUMMARY_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ChaosError(f"--baseline {path}: cannot read a campaign summary.json there "
                         f"({error}); pass the summary.json an earlier campaign wrote.") from None
    if not isinstance(data, dict) or "configurations" not in data:
        raise ChaosError(f"--baseline {file}: not a campaign summary (no 'configurations'); "
                         "pass DIR/summary.json of an earlier `python -m chaos campaign`.")
    return data


def campaign_description(result: CampaignResult) -> dict[str, Any]:
    """The `campaign` part of summary.json: what was planned, and how it went."""
    plan = result.plan
    return {
        "profile": plan.profile,
        "seed": plan.seed,
        "started_at": result.started_at,
        "wall_seconds": round(result.wall_seconds, 2),
        "planned_runs": len(plan.runs()),
        "schedules": len(plan.schedules),
        "clean_runs_per_configuration": plan.clean_runs,
        "runs_per_minute": round(result.runs_per_minute, 1),
        "run_timeout": plan.run_timeout,
        "workers": plan.workers,
        "kinds": list(plan.kinds),
        "aimed_at_every_cell": plan.aimed,
        "refill_delay": plan.refill.delay,
        "workload": plan.workload.to_dict(),
        "excluded": list(plan.excluded),
        "stopped": result.stopped,
        "cluster_renewals": list(result.renewals),
    }
