"""The report's tables: deliveries, faults, client events, holds and the verdict matrix, with
the analysis's run, execution and recovery tables (`chaos.analysis`).

Times are seconds since the run's `run-start`. Every table has `run_id` and `label`
(the configuration), so tables of many runs group and join on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from chaos.analysis import (
    RESUBMIT_REASONS,
    CheckedRun,
    History,
    execution_table,
    index_text,
    landed_faults,
    recovery_table,
    run_identity,
    run_table,
)
from chaos.judge import VIOLATION_KINDS, RunConfiguration


@dataclass(frozen=True)
class CampaignTables:
    """Every table of a campaign, built once from its runs."""

    runs: pd.DataFrame
    executions: pd.DataFrame
    deliveries: pd.DataFrame
    faults: pd.DataFrame
    recoveries: pd.DataFrame
    client_events: pd.DataFrame
    holds: pd.DataFrame
    verdicts: pd.DataFrame


def campaign_tables(runs: Sequence[CheckedRun]) -> CampaignTables:
    histories = [run.history for run in runs]
    executions = execution_table(histories)
    return CampaignTables(
        runs=run_table(runs, executions),
        executions=executions,
        deliveries=delivery_table(histories),
        faults=fault_table(histories),
        recoveries=recovery_table(histories),
        client_events=client_event_table(histories),
        holds=hold_table(histories),
        verdicts=verdict_matrix(runs),
    )


def delivery_table(histories: Iterable[History]) -> pd.DataFrame:
    rows = []
    for history in histories:
        run_id, label, t0 = run_identity(history)
        for event in history:
            if event["type"] == "deliver":
                rows.append({
                    "run_id": run_id, "label": label, "task_id": event["task_id"],
                    "index": index_text(event["index"]), "time": event["time"] - t0,
                    "digest": event["digest"], "attempts": event.get("attempts"),
                    "seq": event["seq"],
                })
    columns = ["run_id", "label", "task_id", "index", "time", "digest", "attempts", "seq"]
    return pd.DataFrame(rows, columns=columns)


def fault_table(histories: Iterable[History]) -> pd.DataFrame:
    rows = []
    for history in histories:
        run_id, label, t0 = run_identity(history)
        for fault in landed_faults(history):
            landed = fault["landed_at"]
            noticed = fault.get("noticed_at")
            rows.append({
                "run_id": run_id, "label": label, "fault_id": fault.get("fault_id"),
                "kind": fault.get("kind"), "worker": fault.get("worker"),
                "pid": fault.get("pid"), "fired": fault["fired_at"] - t0,
                "landed": landed - t0,
                "noticed": np.nan if noticed is None else noticed - t0,
                "to_notice": np.nan if noticed is None else noticed - landed,
                "seq": fault["seq"],
            })
    columns = ["run_id", "label", "fault_id", "kind", "worker", "pid", "fired", "landed",
               "noticed", "to_notice", "seq"]
    return pd.DataFrame(rows, columns=columns)


def client_event_table(histories: Iterable[History]) -> pd.DataFrame:
    """What the client did besides delivering: resubmissions and tasks reported failed."""
    rows = []
    for history in histories:
        run_id, label, t0 = run_identity(history)
        for event in history:
            resubmit = event["type"] == "submit" and event.get("reason") in RESUBMIT_REASONS
            if resubmit or event["type"] == "task-failed":
                rows.append({
                    "run_id": run_id, "label": label,
                    "type": "resubmit" if resubmit else "task-failed",
                    "task_id": event["task_id"], "time": event["time"] - t0,
                    "detail": event.get("reason"), "seq": event["seq"],
                })
    columns = ["run_id", "label", "type", "task_id", "time", "detail", "seq"]
    return pd.DataFrame(rows, columns=columns)


def hold_table(histories: Iterable[History]) -> pd.DataFrame:
    """Probe holds that timed out: a task held at a probe point for a fault that never
    landed (`hold-timeout`, written by the harness). They explain long, idle bars.
    """
    rows = []
    for history in histories:
        run_id, label, t0 = run_identity(history)
        for event in history:
            if event["type"] == "hold-timeout":
                waited = float(event.get("waited") or 0.0)
                rows.append({
                    "run_id": run_id, "label": label, "worker": event.get("worker"),
                    "start": event["time"] - t0 - waited, "end": event["time"] - t0,
                    "waited": waited, "execution": event.get("execution"), "seq": event["seq"],
                })
    columns = ["run_id", "label", "worker", "start", "end", "waited", "execution", "seq"]
    return pd.DataFrame(rows, columns=columns)


def verdict_matrix(runs: Sequence[CheckedRun]) -> pd.DataFrame:
    """Configuration x violation class: how many runs of each showed that violation.

    Also: runs, failing runs, how many runs the model said must deliver everything, and
    the information columns (excused failures, re-executions). Rows in a stable order.
    """
    rows: dict[str, dict[str, Any]] = {}
    order: dict[str, tuple[Any, ...]] = {}
    for run in runs:
        verdict = run.verdict
        label = verdict.label
        order[label] = _config_order(RunConfiguration.from_run_start(run.run_start))
        row = rows.setdefault(label, {
            "target": verdict.target, "runs": 0, "failing": 0, "must_deliver": 0,
            "inconclusive": 0,
            **{kind: 0 for kind in VIOLATION_KINDS},
            "excused_failures": 0, "re_executions": 0,
        })
        row["runs"] += 1
        row["failing"] += verdict.failing
        row["inconclusive"] += verdict.outcome == "inconclusive"
        row["must_deliver"] += verdict.expected.must_deliver_all
        for kind, items in verdict.by_kind().items():
            row[kind] += bool(items)
        row["excused_failures"] += sum(f.excuse is not None for f in verdict.reported_failures)
        row["re_executions"] += verdict.executions.re_executions
    labels = sorted(rows, key=lambda label: order[label])
    index = pd.Index(labels, name="configuration")
    return pd.DataFrame([rows[label] for label in labels], index=index)


# ---------------------------------------------------------------------------- internals


def _config_order(config: RunConfiguration) -> tuple[Any, ...]:
    replicas = 99 if config.max_task_replicas is None else config.max_task_replicas
    registry = {None: 0, "memory": 1, "disk": 2}.get(config.task_registry, 3)
    return (config.target, registry, replicas, not config.scatter)


