"""summary.json of a campaign: per configuration, the runs, the violations by class, and
the overhead figures. The gates (`chaos.gates`) read only this, so a summary saved by
one campaign is also the `--baseline` of the next.

Overhead figures are means over finished runs (hung runs are left out: their makespan
is the time bound, not work):

- `overhead`: mean makespan with faults / fault-free - 1, with its confidence interval
  (`reports.makespan_overhead`): what recovering from the faults costs; and
  `median_ratio`, the same with medians, which one slow run cannot swing (the gate's);
- `fault_free_vs_baseline`: this configuration's fault-free makespan / the baseline
  target's - 1: what the protection costs when nothing fails;
- `recovery`: seconds from a fault landing to the resubmission, and to the delivery,
  of each step it disturbed (medians, p90, and the worst: a stalled recovery).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from chaos.campaign import CampaignResult, CampaignRun
from chaos.checker import VIOLATION_KINDS
from chaos.metadata import git_commit, versions

SUMMARY_VERSION = 1
BASELINE_TARGET = "dask-raw"


def summarise_campaign(result: CampaignResult) -> dict[str, Any]:
    """The campaign's summary.json as a dict (JSON-ready)."""
    plan = result.plan
    by_slug: dict[str, list[CampaignRun]] = {c.slug: [] for c in plan.configurations}
    for run in result.runs:
        by_slug.setdefault(run.spec.configuration.slug, []).append(run)
    figures = _overhead_figures(result.runs)
    configurations = {
        slug: _configuration_summary(runs, figures.get(slug, {}))
        for slug, runs in by_slug.items() if runs
    }
    _add_fault_free_vs_baseline(configurations)
    failing = [run for run in result.runs if not run.verdict.valid]
    return {
        "version": SUMMARY_VERSION,
        "campaign": {
            "profile": plan.profile,
            "seed": plan.seed,
            "started_at": result.started_at,
            "wall_seconds": round(result.wall_seconds, 2),
            "runs": len(result.runs),
            "planned_runs": len(plan.runs()),
            "schedules": len(plan.schedules),
            "clean_runs_per_configuration": plan.clean_runs,
            "runs_per_minute": round(result.runs_per_minute, 1),
            "run_timeout": plan.run_timeout,
            "workers": plan.workers,
            "kinds": list(plan.kinds),
            "workload": plan.workload.to_dict(),
            "excluded": list(plan.excluded),
            "stopped": result.stopped,
            "git_commit": git_commit(),
            "versions": _versions(),
        },
        "totals": {
            "runs": len(result.runs),
            "failing_runs": len(failing),
            "violations": _violation_counts(result.runs),
        },
        "configurations": configurations,
    }


# ---------------------------------------------------------------------------- per configuration


def _configuration_summary(runs: Sequence[CampaignRun],
                           figures: Mapping[str, Any]) -> dict[str, Any]:
    first = runs[0]
    faulty = [run for run in runs if not run.spec.clean]
    clean = [run for run in runs if run.spec.clean]
    outcomes = {outcome: sum(run.verdict.outcome == outcome for run in runs)
                for outcome in ("valid", "invalid", "hung")}
    must_deliver = [run for run in runs if run.verdict.expected.must_deliver_all]
    return {
        "label": first.verdict.label,
        "target": first.spec.configuration.target,
        "config": first.spec.configuration.config.to_dict(),
        "runs": len(runs),
        "faulty_runs": len(faulty),
        "clean_runs": len(clean),
        "faults_injected": sum(_faults(run) for run in runs),
        "failing_runs": outcomes["invalid"] + outcomes["hung"],
        "outcomes": outcomes,
        "must_deliver_runs": len(must_deliver),
        "must_deliver_failing_runs": sum(not run.verdict.valid for run in must_deliver),
        "violations": _violation_counts(runs),
        "reported_failures": sum(len(run.verdict.reported_failures) for run in runs),
        "excused_failures": sum(f.excuse is not None for run in runs
                                for f in run.verdict.reported_failures),
        "re_executions": sum(run.verdict.executions.re_executions for run in runs),
        "makespan": {
            "clean_median": _median(run.makespan for run in clean if _finished(run)),
            "clean_mean": _mean(run.makespan for run in clean if _finished(run)),
            "faulty_median": _median(run.makespan for run in faulty if _finished(run)),
            "faulty_mean": _mean(run.makespan for run in faulty if _finished(run)),
        },
        "overhead": {**figures.get("overhead", {}),
                     "median_ratio": _ratio(_median(run.makespan for run in faulty
                                                    if _finished(run)),
                                            _median(run.makespan for run in clean
                                                    if _finished(run)))},
        "recovery": dict(figures.get("recovery", {})),
        "fault_free_vs_baseline": None,
        "failing": [
            {"run_id": run.run_id, "outcome": run.verdict.outcome,
             "found": _found(run), "folder": None if run.folder is None else str(run.folder)}
            for run in runs if not run.verdict.valid
        ],
    }


def _violation_counts(runs: Sequence[CampaignRun]) -> dict[str, dict[str, int]]:
    """Per violation class: how many runs showed it, and how many violations in all."""
    counts: dict[str, dict[str, int]] = {kind: {"runs": 0, "count": 0}
                                         for kind in VIOLATION_KINDS}
    for run in runs:
        for kind, items in run.verdict.by_kind().items():
            if items:
                counts[kind]["runs"] += 1
                counts[kind]["count"] += len(items)
    return counts


def _add_fault_free_vs_baseline(configurations: dict[str, dict[str, Any]]) -> None:
    baseline = [c["makespan"]["clean_mean"] for c in configurations.values()
                if c["target"] == BASELINE_TARGET and c["makespan"]["clean_mean"] is not None]
    if not baseline:
        return
    reference = min(baseline)
    for summary in configurations.values():
        mean = summary["makespan"]["clean_mean"]
        if mean is not None and summary["target"] != BASELINE_TARGET and reference > 0:
            summary["fault_free_vs_baseline"] = round(mean / reference - 1, 4)


def _overhead_figures(runs: Sequence[CampaignRun]) -> dict[str, dict[str, Any]]:
    """Makespan overhead (with interval) and recovery times per configuration slug."""
    if not runs:
        return {}
    from reports import CheckedRun, makespan_overhead, recovery_table, run_table

    checked = [CheckedRun(run.history, run.verdict) for run in runs]
    slug_of = {run.verdict.label: run.spec.configuration.slug for run in runs}
    figures: dict[str, dict[str, Any]] = {}
    for row in makespan_overhead(run_table(checked)).to_dict("records"):
        figures.setdefault(slug_of[row["label"]], {})["overhead"] = {
            "point": _number(row["overhead"]), "low": _number(row["low"]),
            "high": _number(row["high"]), "method": row["method"],
            "faulty_runs": int(row["faulty_runs"]), "clean_runs": int(row["clean_runs"]),
        }
    recoveries = recovery_table(run.history for run in runs)
    for label, frame in recoveries.groupby("label", sort=False):
        figures.setdefault(slug_of[str(label)], {})["recovery"] = {
            "disturbed_steps": len(frame),
            "to_resubmit_median": _number(frame["to_resubmit"].median()),
            "to_deliver_median": _number(frame["to_deliver"].median()),
            "to_deliver_p90": _number(frame["to_deliver"].quantile(0.9)),
            "to_deliver_max": _number(frame["to_deliver"].max()),
            "never_delivered": int(frame["to_deliver"].isna().sum()),
        }
    return figures


# ---------------------------------------------------------------------------- helpers


def _found(run: CampaignRun) -> str:
    counts = [f"{kind} {len(items)}" for kind, items in run.verdict.by_kind().items() if items]
    return ", ".join(counts) or "no violations"


def _faults(run: CampaignRun) -> int:
    return sum(1 for event in run.history if event["type"] == "fault")


def _finished(run: CampaignRun) -> bool:
    return run.verdict.outcome != "hung"


def _median(values: Any) -> float | None:
    found = list(values)
    return round(statistics.median(found), 4) if found else None


def _mean(values: Any) -> float | None:
    found = list(values)
    return round(statistics.fmean(found), 4) if found else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator - 1, 4)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 4) if math.isfinite(number) else None


def _versions() -> dict[str, Any]:
    found = dict(versions())
    try:
        from importlib import metadata

        found.setdefault("hypothesis", metadata.version("hypothesis"))
    except Exception:  # the summary is still useful without it
        pass
    return found
