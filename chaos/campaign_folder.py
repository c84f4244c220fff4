"""A campaign's report folder, once its runs are done:

    DIR/index.html       the HTML reliability report (`reports`)
    DIR/summary.json     per configuration: runs, violations by class, overhead figures
    DIR/gates.json       every gate: measured value, threshold, pass/fail
    DIR/campaign.log     what Dask and the library logged during the campaign
    DIR/runs/<run_id>/   history.jsonl, schedule.json, summary.json of every failing
                         run and of a sample of passing ones, so that
                         `python -m chaos replay DIR/runs/<run_id>/schedule.json --out D2`
                         runs it again

The other passing runs' folders are removed (their verdicts stay in the report and the
summary): a nightly campaign would otherwise leave thousands of them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chaos.campaign import RUNS_FOLDER, CampaignResult, CampaignRun
from chaos.campaign_summary import summarise_campaign
from chaos.gates import GateReport, GateThresholds, evaluate_gates

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
                    title: str | None = None) -> CampaignOutcome:
    """Prune the passing runs not sampled, then write summary.json, gates.json and
    index.html into the campaign's folder."""
    result = prune_runs(result)
    summary = summarise_campaign(result)
    gates = evaluate_gates(summary, thresholds, baseline=baseline)
    folder = result.out
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / GATES_FILE).write_text(json.dumps(gates.to_dict(), indent=2) + "\n",
                                     encoding="utf-8")
    report = write_campaign_report(result, title=title) if result.runs else None
    kept = tuple(run.run_id for run in result.runs if run.folder is not None)
    return CampaignOutcome(folder, report, summary, gates, kept)


def prune_runs(result: CampaignResult) -> CampaignResult:
    """Keep every failing run's folder, and the first `keep_passing` passing runs with
    faults of each configuration (the ones the report draws timelines of)."""
    kept_per_configuration: dict[str, int] = {}
    runs: list[CampaignRun] = []
    runs_dir = (result.out / RUNS_FOLDER).resolve()
    for run in result.runs:
        slug = run.spec.configuration.slug
        keep = not run.verdict.valid
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


def load_summary(path: str | Path) -> dict[str, Any]:
    """A campaign summary.json (or the one in a campaign folder), for `--baseline`."""
    from chaos.errors import ChaosError

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


def write_campaign_report(result: CampaignResult, *, title: str | None = None) -> Path:
    from reports import CheckedRun, build_campaign_report, write_report

    checked = [CheckedRun(run.history, run.verdict, run.folder) for run in result.runs]
    plan = result.plan
    html = build_campaign_report(
        checked,
        title=title or (f"Chaos campaign '{plan.profile}': exactly-once delivery under "
                        "worker loss"),
        campaign_seed=plan.seed,
    )
    return write_report(html, result.out)
