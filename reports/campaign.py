"""The campaign report: checked runs in, one self-contained HTML page out.

`build_campaign_report(runs)` gathers the tables, draws the figures and renders the
page; `write_report` saves it; `report_from_folder` does all three for a folder of runs.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chaos.analysis import (
    RECOVERY_PERCENTILES,
    CheckedRun,
    OracleFor,
    coverage_summary,
    load_runs,
    makespan_overhead,
    recovery_figures,
    workload_oracle,
)
from chaos.analysis.recovery import of_scheduler
from chaos.judge import DEFAULT_MODEL, VIOLATION_KINDS, OutcomeModel
from reports import figures
from reports.html import png_data_uri, render_campaign
from reports.tables import CampaignTables, campaign_tables

KIND_TITLES = {
    "lost": "lost (silent)", "duplicated": "duplicated", "unexpected": "unexpected",
    "corrupted": "corrupted", "reported-failed": "failed, must deliver",
    "hung": "hung / cut short",
}
REPORT_FILE = "index.html"


# What a target is, where its name alone could mislead.
TARGET_NOTES = {
    "dask-raw": "the baseline: plain Dask, no replicas, no registry",
    "prc630": "a model of PyRosettaCluster PR #630's described behaviour, not PyRosettaCluster "
              "itself; informational, never gated",
    "pyrosettacluster": "PyRosettaCluster itself; informational, never gated",
}


def build_campaign_report(
    runs: Sequence[CheckedRun],
    *,
    title: str = "Chaos campaign: exactly-once delivery under worker loss",
    campaign_seed: int | None = None,
    max_failing_runs: int = 40,
    max_evidence: int = 30,
    max_timelines: int = 10,
    max_listed_runs: int = 5000,
    sampled_timelines: int = 3,
    confidence: float = 0.95,
    generated_at: dt.datetime | None = None,
    replays: Mapping[str, Any] | None = None,
) -> str:
    """The HTML page of a campaign. Pure: reads the runs, never a cluster or the clock
    (unless `generated_at` is left out). Caps keep a large campaign's page light; the
    verdict table always covers every run.
    """
    if not runs:
        raise ValueError(
            "no runs to report; pass the CheckedRun list from chaos.analysis.load_runs(...) or "
            "chaos.analysis.check_runs(...)."
        )
    tables = campaign_tables(runs)
    order = list(tables.verdicts.index)
    rank = {label: position for position, label in enumerate(order)}
    failing = sorted((run for run in runs if run.verdict.failing),
                     key=lambda run: rank[run.verdict.label])
    inconclusive = [run for run in runs if run.verdict.outcome == "inconclusive"]
    timeline_runs = failing[:max_timelines] + _sample_passing(runs, tables, sampled_timelines)
    group_by, facet_by = figures.cdf_grouping(tables.runs)
    recoveries = figures.with_cdf_groups(tables.recoveries, tables.runs)
    overhead = makespan_overhead(tables.runs, confidence=confidence)
    context = {
        "title": title,
        "generated_at": (generated_at or dt.datetime.now(dt.timezone.utc)).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "summary": _summary(runs, tables),
        "violation_kinds": VIOLATION_KINDS,
        "target_notes": TARGET_NOTES,
        "kind_titles": KIND_TITLES,
        "verdict_rows": [
            {"label": label, **row} for label, row in tables.verdicts.to_dict("index").items()
        ],
        "failing_runs": [_failing_run(run, max_evidence) for run in failing[:max_failing_runs]],
        "more_failing": max(len(failing) - max_failing_runs, 0),
        "inconclusive_runs": [_inconclusive_run(run) for run in inconclusive[:max_failing_runs]],
        "coverage_rows": _coverage_rows(runs, order),
        "replays": replays,
        "timelines": [
            {"run_id": run.run_id, "image": png_data_uri(_timeline(run, tables))}
            for run in timeline_runs
        ],
        "sampled": len(timeline_runs) - len(failing[:max_timelines]),
        "recovery_image": (
            png_data_uri(figures.recovery_cdf_figure(recoveries, group_by, facet_by))
            if len(recoveries) else None
        ),
        "recovery_rows": _recovery_rows(
            recoveries, [facet_by, group_by] if facet_by else [group_by]
        ),
        "scheduler_recovery": bool(len(recoveries)) and bool(of_scheduler(recoveries).any()),
        "grouped": group_by != "label",
        "waste_image": png_data_uri(figures.wasted_work_figure(tables.runs, order)),
        "overhead_image": png_data_uri(figures.overhead_figure(overhead, order)),
        "overhead_rows": _overhead_rows(overhead, order),
        "confidence_percent": round(confidence * 100),
        "provenance": _provenance(runs, campaign_seed),
        "all_runs": tables.runs.head(max_listed_runs).to_dict("records"),
        "more_runs": max(len(tables.runs) - max_listed_runs, 0),
    }
    return render_campaign(context)


def write_report(html: str, path: str | os.PathLike[str]) -> Path:
    """Write the page to `path`, or to `path/index.html` when `path` is a folder."""
    target = Path(path)
    if target.is_dir() or not target.suffix:
        target = target / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html, encoding="utf-8")
    return target


def report_from_folder(
    folder: str | os.PathLike[str],
    oracle_for: OracleFor = workload_oracle,
    *,
    out: str | os.PathLike[str] | None = None,
    model: OutcomeModel = DEFAULT_MODEL,
    **options: Any,
) -> Path:
    """Check every run under `folder` and write its report (default: `folder/index.html`)."""
    runs = load_runs(folder, oracle_for, model=model)
    return write_report(build_campaign_report(runs, **options), out or folder)


# ---------------------------------------------------------------------------- internals


def _summary(runs: Sequence[CheckedRun], tables: CampaignTables) -> dict[str, int]:
    return {
        "runs": len(runs),
        "configurations": len(tables.verdicts),
        "failing": sum(run.verdict.failing for run in runs),
        "hung": sum(run.verdict.outcome == "hung" for run in runs),
        "inconclusive": sum(run.verdict.outcome == "inconclusive" for run in runs),
        "lost_runs": sum(bool(run.verdict.by_kind()["lost"]) for run in runs),
        "faults": len(tables.faults),
    }


def _sample_passing(
    runs: Sequence[CheckedRun], tables: CampaignTables, count: int
) -> list[CheckedRun]:
    # Deterministic: the first passing run with faults of each configuration, in the
    # verdict table's order, so the same campaign always shows the same timelines.
    faults = dict(zip(tables.runs["run_id"], tables.runs["faults"], strict=True))
    first_of: dict[str, CheckedRun] = {}
    for run in runs:
        if run.verdict.valid and faults[run.run_id] > 0:
            first_of.setdefault(run.verdict.label, run)
    ordered = [first_of[label] for label in tables.verdicts.index if label in first_of]
    if len(ordered) <= count:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, count).round().astype(int)
    return [ordered[i] for i in dict.fromkeys(picks.tolist())]


def _timeline(run: CheckedRun, tables: CampaignTables) -> Any:
    def of_run(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["run_id"] == run.run_id]

    verdict = run.verdict
    title = f"{run.run_id} · {verdict.label} · {verdict.outcome.upper()}"
    if not verdict.valid:
        counts = [f"{kind} {len(items)}" for kind, items in verdict.by_kind().items() if items]
        title += " (" + ", ".join(counts) + ")"
    flagged = {
        seq for v in verdict.violations
        if v.kind in ("duplicated", "corrupted", "unexpected") for seq in v.seqs
    }
    end = run.history[-1]
    run_end = None
    if end["type"] == "run-end":
        run_end = (float(end["time"] - run.run_start["time"]), str(end.get("status")))
    return figures.timeline_figure(
        of_run(tables.executions), of_run(tables.faults), of_run(tables.deliveries),
        client_events=of_run(tables.client_events), flagged_deliveries=flagged,
        run_end=run_end, holds=of_run(tables.holds), title=title,
    )


def _failing_run(run: CheckedRun, max_evidence: int) -> dict[str, Any]:
    verdict = run.verdict
    counts = [f"{KIND_TITLES[kind]} {len(items)}" for kind, items in verdict.by_kind().items()
              if items]
    return {
        "run_id": run.run_id, "label": verdict.label, "outcome": verdict.outcome,
        "found": "; ".join(counts) or "no violations",
        "expected": verdict.expected.explain(),
        "expected_short": f"{verdict.expected.outcome} ({verdict.expected.rule})",
        "seed": run.run_start.get("seed"),
        "faults": sum(1 for e in run.history if e["type"] == "fault"),
        "status": verdict.run_status, "error": verdict.run_error,
        "replay": run.replay_command,
        "violations": [
            {"kind": v.kind, "task_id": "—" if v.task_id is None else v.task_id,
             "index": "—" if v.index is None else ".".join(map(str, v.index)) or "()",
             "seqs": _seq_text(v.seqs), "detail": v.detail}
            for v in verdict.violations[:max_evidence]
        ],
        "more": max(len(verdict.violations) - max_evidence, 0),
    }


def _coverage_rows(runs: Sequence[CheckedRun], order: Sequence[str]) -> list[dict[str, Any]]:
    by_label: dict[str, list[Any]] = {}
    for run in runs:
        if any(e["type"] == "fault" for e in run.history):
            by_label.setdefault(run.verdict.label, []).append(run.history)
    rows = []
    for label in order:
        if label not in by_label:
            continue
        coverage = coverage_summary(by_label[label])
        hits = ", ".join(f"{kind} @ {window}: {n}" for kind, cells in coverage["hits"].items()
                         for window, n in cells.items())
        rows.append({"label": label, "covered": coverage["covered"], "cells": coverage["cells"],
                     "hits": hits or "—", "missing": ", ".join(coverage["missing"]) or "—"})
    return rows


def _inconclusive_run(run: CheckedRun) -> dict[str, Any]:
    misses = [m for m in run.verdict.fault_misses if m.inconclusive]
    return {
        "run_id": run.run_id, "label": run.verdict.label, "replay": run.replay_command,
        "misses": "; ".join(f"{m.fault_id or 'run'} {m.kind or ''} {m.cause}: {m.detail}"
                            for m in misses),
    }


def _seq_text(seqs: Sequence[int], shown: int = 12) -> str:
    text = ", ".join(map(str, seqs[:shown]))
    return text + (f", … ({len(seqs)} events)" if len(seqs) > shown else "")


def _recovery_rows(recoveries: pd.DataFrame, keys: list[str]) -> list[dict[str, Any]]:
    """One row per group, for worker faults, then one per target over all its groups (the
    campaign-wide figure); and one per group for the scheduler's loss (its outage
    included), which the gates hold to a threshold of its own."""
    if not len(recoveries):
        return []
    scheduler = of_scheduler(recoveries)
    rows: list[dict[str, Any]] = []
    for _, frame in recoveries[~scheduler].groupby("target", sort=False):
        groups = list(_rows(frame, keys, ""))
        rows += groups
        if len(groups) > 1:
            rows += _rows(frame, ["target"], ": all its configurations")
    return [*rows, *_rows(recoveries[scheduler], keys, " (the scheduler lost)")]


def _rows(recoveries: pd.DataFrame, keys: list[str], suffix: str) -> Iterable[dict[str, Any]]:
    for group, frame in recoveries.groupby(keys, sort=False):
        figures = recovery_figures(frame)
        yield {
            "group": ": ".join(map(str, group)) + suffix, "n": figures["disturbed_steps"],
            "resubmit": _seconds(figures["to_resubmit_median"]),
            **{f"deliver_p{q}": _seconds(figures[f"to_deliver_p{q}"])
               for q in RECOVERY_PERCENTILES},
            "deliver_max": _seconds(figures["to_deliver_max"]),
            "working_p99": _seconds(figures["working_p99"]),
            "working_max": _seconds(figures["working_max"]),
            "isolated_p99": _seconds(figures.get("isolated_p99")),
            "isolated_max": _seconds(figures.get("isolated_max")),
            "never": figures["never_delivered"],
        }


def _overhead_rows(overhead: pd.DataFrame, order: Sequence[str]) -> list[dict[str, Any]]:
    by_label = {row["label"]: row for row in overhead.to_dict("records")}
    rows = []
    for label in order:
        row = by_label.get(label)
        if row is None:
            continue
        has_interval = np.isfinite(row["low"])
        rows.append({
            "label": label, "faulty_runs": row["faulty_runs"], "clean_runs": row["clean_runs"],
            "overhead": _percent(row["overhead"]),
            "interval": (f"{_percent(row['low'])} to {_percent(row['high'])}"
                         if has_interval else "—"),
            "method": row["method"],
        })
    return rows


def _provenance(runs: Sequence[CheckedRun], campaign_seed: int | None) -> dict[str, Any]:
    starts = [run.run_start for run in runs]
    versions: dict[str, list[str]] = {}
    for start in starts:
        for name, value in sorted((start.get("versions") or {}).items()):
            seen = versions.setdefault(str(name), [])
            if str(value) not in seen:
                seen.append(str(value))
    seeds = sorted({start.get("seed") for start in starts}, key=lambda s: (s is None, str(s)))
    return {
        "commits": ", ".join(_distinct(str(s.get("git_commit")) for s in starts)),
        "campaign_seed": campaign_seed,
        "seeds": _seed_text(seeds),
        "targets": ", ".join(_distinct(str(s.get("target")) for s in starts)),
        "versions": [
            (name, " | ".join(values) + (" (differs across runs)" if len(values) > 1 else ""))
            for name, values in versions.items()
        ],
    }


def _seed_text(seeds: Sequence[Any]) -> str:
    if len(seeds) <= 16:
        return ", ".join(map(str, seeds))
    numbers = [s for s in seeds if isinstance(s, int)]
    if len(numbers) == len(seeds):
        return f"{min(numbers)} … {max(numbers)} ({len(seeds)} distinct)"
    return ", ".join(map(str, seeds[:16])) + f", … ({len(seeds)} distinct)"


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _seconds(value: float | None) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _percent(value: float) -> str:
    return "—" if not np.isfinite(value) else f"{value:+.0%}"
