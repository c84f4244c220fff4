"""summary.json of a campaign: per configuration, the runs, the violations by class, and
the overhead figures. The gates (`chaos.analysis.gates`) read only this, so a summary
saved by one campaign is also the `--baseline` of the next.

A pure function of the runs (anything shaped like `SummarisedRun`) and the campaign's
description; it never talks to a cluster. Overhead figures leave hung runs out (their
makespan is the time bound, not work):

- `overhead`: median makespan with faults / median fault-free - 1 (a ratio of medians,
  which one slow run cannot swing), with a bootstrap interval (`makespan_overhead`;
  `method` names the estimator): what recovering from the faults costs; and
  `median_ratio`, the same point estimate (the gate's);
- `fault_free_vs_baseline`: this configuration's median fault-free makespan / the
  baseline target's - 1: what the protection costs when nothing fails;
- `recovery`: seconds from a fault landing to the resubmission (median), and to the
  delivery (p50, p90, p99 and the worst, a stalled recovery, counting a step never
  recovered as waited for until the run ended), of each step it disturbed
  (`chaos.analysis.recovery`);
- `coverage`: hits per fault kind and lifecycle window, and how many of the cells that
  exist in the configuration were hit (`chaos.analysis.coverage`).

and over the whole campaign (`totals`): `recovery_by_target`, the same recovery figures
for a worker's loss pooled over each target's configurations (the library's beside the
baseline's, on the same schedules).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from chaos.analysis.coverage import coverage_summary
from chaos.analysis.metrics import makespan_overhead
from chaos.analysis.recovery import of_scheduler, recovery_figures, rounded
from chaos.analysis.runs import CheckedRun
from chaos.analysis.tables import recovery_table, run_table
from chaos.history import git_commit, versions
from chaos.judge import MISS_CAUSES, VERDICT_OUTCOMES, VIOLATION_KINDS, Verdict
from chaos.spec import FAULT_KINDS

SUMMARY_VERSION = 1
BASELINE_TARGET = "dask-raw"


class SummarisedRun(Protocol):
    """What the summary reads of one run (a campaign's `SummarisedRun` is one)."""

    @property
    def run_id(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def settings(self) -> Mapping[str, Any]: ...
    @property
    def clean(self) -> bool: ...
    @property
    def history(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def verdict(self) -> Verdict: ...
    @property
    def makespan(self) -> float: ...
    @property
    def folder(self) -> Path | None: ...


def summarise_campaign(runs: Sequence[SummarisedRun], campaign: Mapping[str, Any],
                       slugs: Sequence[str] = ()) -> dict[str, Any]:
    """The campaign's summary.json as a dict (JSON-ready).

    `campaign` describes the campaign (profile, seed, planned runs, ...) and is copied
    in with the provenance added; `slugs` orders the configurations (others follow).
    """
    by_slug: dict[str, list[SummarisedRun]] = {slug: [] for slug in slugs}
    for run in runs:
        by_slug.setdefault(run.slug, []).append(run)
    recoveries = recovery_table(run.history for run in runs)
    figures = _overhead_figures(runs, recoveries)
    kinds = tuple(campaign.get("kinds") or FAULT_KINDS)
    configurations = {
        slug: _configuration_summary(group, figures.get(slug, {}), kinds)
        for slug, group in by_slug.items() if group
    }
    _add_fault_free_vs_baseline(configurations)
    failing = [run for run in runs if run.verdict.failing]
    return {
        "version": SUMMARY_VERSION,
        "campaign": {**campaign, "runs": len(runs), "git_commit": git_commit(),
                     "versions": _versions()},
        "totals": {
            "runs": len(runs),
            "failing_runs": len(failing),
            "inconclusive_runs": sum(run.verdict.outcome == "inconclusive" for run in runs),
            "coverage": {"cells": sum(c["coverage"]["cells"] for c in configurations.values()),
                         "covered": sum(c["coverage"]["covered"]
                                        for c in configurations.values())},
            "violations": _violation_counts(runs),
            "recovery_by_target": _recovery_by_target(runs, recoveries),
        },
        "configurations": configurations,
    }


# ---------------------------------------------------------------------------- per configuration


def _configuration_summary(runs: Sequence[SummarisedRun], figures: Mapping[str, Any],
                           kinds: Sequence[str]) -> dict[str, Any]:
    first = runs[0]
    faulty = [run for run in runs if not run.clean]
    clean = [run for run in runs if run.clean]
    outcomes = {outcome: sum(run.verdict.outcome == outcome for run in runs)
                for outcome in VERDICT_OUTCOMES}
    must_deliver = [run for run in runs if run.verdict.expected.must_deliver_all]
    misses = Counter(miss.cause for run in runs for miss in run.verdict.fault_misses)
    return {
        "label": first.verdict.label,
        "target": first.target,
        "config": dict(first.settings),
        "runs": len(runs),
        "faulty_runs": len(faulty),
        "clean_runs": len(clean),
        "faults_injected": sum(_faults(run) for run in runs),
        "failing_runs": outcomes["invalid"] + outcomes["hung"],
        "outcomes": outcomes,
        "inconclusive_share": (round(outcomes["inconclusive"] / len(faulty), 4)
                               if faulty else None),
        "fault_misses": {cause: misses[cause] for cause in MISS_CAUSES},
        "faults_not_applicable": misses["impossible"],
        "must_deliver_runs": len(must_deliver),
        "must_deliver_failing_runs": sum(run.verdict.failing for run in must_deliver),
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
        "scheduler_recovery": dict(figures.get("scheduler_recovery", {})),
        "coverage": coverage_summary([run.history for run in faulty], kinds),
        "fault_free_vs_baseline": None,
        "failing": [
            {"run_id": run.run_id, "outcome": run.verdict.outcome,
             "found": _found(run), "folder": None if run.folder is None else str(run.folder)}
            for run in runs if run.verdict.failing
        ],
        "inconclusive": [
            {"run_id": run.run_id, "folder": None if run.folder is None else str(run.folder),
             "misses": [f"{m.fault_id or 'run'} {m.cause}: {m.detail}"[:200]
                        for m in run.verdict.fault_misses if m.inconclusive]}
            for run in runs if run.verdict.outcome == "inconclusive"
        ],
    }


def _violation_counts(runs: Sequence[SummarisedRun]) -> dict[str, dict[str, int]]:
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
    # Medians, not means: one slow fault-free run on a shared machine must not decide.
    baseline = [c["makespan"]["clean_median"] for c in configurations.values()
                if c["target"] == BASELINE_TARGET and c["makespan"]["clean_median"] is not None]
    if not baseline:
        return
    reference = min(baseline)
    for summary in configurations.values():
        median = summary["makespan"]["clean_median"]
        if median is not None and summary["target"] != BASELINE_TARGET and reference > 0:
            summary["fault_free_vs_baseline"] = round(median / reference - 1, 4)


def _overhead_figures(runs: Sequence[SummarisedRun],
                      recoveries: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Makespan overhead (with interval) and recovery times per configuration slug."""
    if not runs:
        return {}
    checked = [CheckedRun(tuple(run.history), run.verdict) for run in runs]
    slug_of = {run.verdict.label: run.slug for run in runs}
    figures: dict[str, dict[str, Any]] = {}
    for row in makespan_overhead(run_table(checked)).to_dict("records"):
        figures.setdefault(slug_of[row["label"]], {})["overhead"] = {
            "point": rounded(row["overhead"]), "low": rounded(row["low"]),
            "high": rounded(row["high"]), "method": row["method"],
            "faulty_runs": int(row["faulty_runs"]), "clean_runs": int(row["clean_runs"]),
        }
    if recoveries.empty:
        return figures
    # A worker's loss and the scheduler's are gated apart: the scheduler's includes an
    # outage (a new scheduler, every worker and the client reconnecting) no library
    # can shorten, and would hide a slow recovery from a worker's loss behind it.
    scheduler = of_scheduler(recoveries)
    for key, rows in (("recovery", recoveries[~scheduler]),
                      ("scheduler_recovery", recoveries[scheduler])):
        for label, frame in rows.groupby("label", sort=False):
            figures.setdefault(slug_of[str(label)], {})[key] = recovery_figures(frame)
    return figures


def _recovery_by_target(runs: Sequence[SummarisedRun],
                        recoveries: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each target's recovery from a worker's loss over all its configurations: the
    campaign-wide percentiles, beside the baseline's on the same schedules."""
    if recoveries.empty:
        return {}
    target_of = {run.verdict.label: run.target for run in runs}
    workers = recoveries[~of_scheduler(recoveries)]
    return {str(target): recovery_figures(frame)
            for target, frame in workers.groupby(workers["label"].map(target_of), sort=False)}


# ---------------------------------------------------------------------------- helpers


def _found(run: SummarisedRun) -> str:
    counts = [f"{kind} {len(items)}" for kind, items in run.verdict.by_kind().items() if items]
    return ", ".join(counts) or "no violations"


def _faults(run: SummarisedRun) -> int:
    return sum(1 for event in run.history if event["type"] == "fault")


def _finished(run: SummarisedRun) -> bool:
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


def _versions() -> dict[str, Any]:
    found = dict(versions())
    try:
        from importlib import metadata

        found.setdefault("hypothesis", metadata.version("hypothesis"))
    except Exception:  # the summary is still useful without it
        pass
    return found
