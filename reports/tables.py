"""pandas tables from checked runs: executions, deliveries, faults, recoveries, runs, verdicts.

Times are seconds since the run's `run-start`. Every table has `run_id` and `label`
(the configuration), so tables of many runs group and join on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from chaos.checker import VIOLATION_KINDS
from chaos.model import RunConfiguration
from reports.runs import CheckedRun, History

RESUBMIT_REASONS = frozenset({"lost-input", "killed-worker", "step-timeout", "resumed"})


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


EXECUTION_COLUMNS = [
    "run_id", "label", "execution", "task_id", "index", "step", "key", "worker", "pid",
    "start", "end", "seconds", "outcome", "used", "invoke_seq",
]


def execution_table(histories: Iterable[History]) -> pd.DataFrame:
    """One row per execution (attempt on a worker), with `used`: did its result count?

    An execution is used when it is the last successful one of its step input that was
    not suppressed as a duplicate, and its step's output went on to the next step or to
    delivery. Everything else (killed, raised, duplicate, orphaned) is wasted work.
    """
    rows = [row for history in histories for row in _execution_rows(history)]
    return pd.DataFrame(rows, columns=EXECUTION_COLUMNS)


def delivery_table(histories: Iterable[History]) -> pd.DataFrame:
    rows = []
    for history in histories:
        run_id, label, t0 = _identity(history)
        for event in history:
            if event["type"] == "deliver":
                rows.append({
                    "run_id": run_id, "label": label, "task_id": event["task_id"],
                    "index": _index_text(event["index"]), "time": event["time"] - t0,
                    "digest": event["digest"], "attempts": event.get("attempts"),
                    "seq": event["seq"],
                })
    columns = ["run_id", "label", "task_id", "index", "time", "digest", "attempts", "seq"]
    return pd.DataFrame(rows, columns=columns)


def fault_table(histories: Iterable[History]) -> pd.DataFrame:
    rows = []
    for history in histories:
        run_id, label, t0 = _identity(history)
        for fault in _faults(history):
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
        run_id, label, t0 = _identity(history)
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
        run_id, label, t0 = _identity(history)
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


def recovery_table(histories: Iterable[History]) -> pd.DataFrame:
    """One row per (fault, step input it disturbed): seconds from the kill landing to the
    step's resubmission, its re-execution, and the first delivery that came from it.
    NaN means it never happened in the run (e.g. the task was lost).
    """
    rows = [row for history in histories for row in _recovery_rows(history)]
    columns = ["run_id", "label", "fault_id", "kind", "task_id", "index", "step",
               "to_resubmit", "to_reexecute", "to_deliver"]
    return pd.DataFrame(rows, columns=columns)


def run_table(runs: Sequence[CheckedRun], executions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run: configuration, faults, verdict counts, wasted work and makespan."""
    if executions is None:
        executions = execution_table(run.history for run in runs)
    wasted = executions[~executions["used"].astype(bool)].groupby("run_id")["seconds"].sum()
    busy = executions.groupby("run_id")["seconds"].sum()
    rows = []
    for run in runs:
        verdict, start = run.verdict, run.run_start
        config = RunConfiguration.from_run_start(start)
        kinds: dict[str, int] = {kind: len(items) for kind, items in verdict.by_kind().items()}
        rows.append({
            "run_id": run.run_id, "label": verdict.label, "target": config.target,
            "replicas": "all" if config.max_task_replicas is None else config.max_task_replicas,
            "registry": config.task_registry or "none",
            "scatter": config.scatter, "seed": start.get("seed"),
            "faults": len(_faults(run.history)),
            "scheduled_faults": _scheduled_faults(start),
            "status": verdict.run_status,
            "outcome": verdict.outcome, "expected": verdict.expected.outcome,
            "rule": verdict.expected.rule, **kinds,
            "reported_failures": len(verdict.reported_failures),
            "delivered": verdict.deliveries.delivered,
            "expected_outputs": verdict.deliveries.expected,
            "executions": verdict.executions.executions,
            "re_executions": verdict.executions.re_executions,
            "suppressed": verdict.executions.suppressed_duplicates,
            "busy_seconds": float(busy.get(run.run_id, 0.0)),
            "wasted_seconds": float(wasted.get(run.run_id, 0.0)),
            "makespan": _makespan(run.history),
            "git_commit": start.get("git_commit"),
            "source": None if run.source is None else str(run.source),
        })
    return pd.DataFrame(rows)


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
            **{kind: 0 for kind in VIOLATION_KINDS},
            "excused_failures": 0, "re_executions": 0,
        })
        row["runs"] += 1
        row["failing"] += not verdict.valid
        row["must_deliver"] += verdict.expected.must_deliver_all
        for kind, items in verdict.by_kind().items():
            row[kind] += bool(items)
        row["excused_failures"] += sum(f.excuse is not None for f in verdict.reported_failures)
        row["re_executions"] += verdict.executions.re_executions
    labels = sorted(rows, key=lambda label: order[label])
    index = pd.Index(labels, name="configuration")
    return pd.DataFrame([rows[label] for label in labels], index=index)


# ---------------------------------------------------------------------------- internals


def _identity(history: History) -> tuple[str, str, float]:
    start = history[0]
    return (str(start.get("run_id", "")), RunConfiguration.from_run_start(start).label,
            float(start["time"]))


def _index_text(index: Sequence[int]) -> str:
    return ".".join(str(i) for i in index) or "-"


def _faults(history: History) -> list[Mapping[str, Any]]:
    faults: list[Mapping[str, Any]] = []
    for event in history:
        if event["type"] == "fault" and event.get("fired_at") is not None:
            landed = event.get("landed_at")
            faults.append({**event, "landed_at": event["fired_at"] if landed is None else landed})
    return faults


def _scheduled_faults(run_start: Mapping[str, Any]) -> float:
    # The schedule's format is the harness's; a count we cannot read is unknown (NaN).
    faults = (run_start.get("schedule") or {}).get("faults")
    return float(len(faults)) if isinstance(faults, list) else np.nan


def _makespan(history: History) -> float:
    end = history[-1]
    if end["type"] == "run-end" and end.get("makespan") is not None:
        return float(end["makespan"])
    return float(end["time"] - history[0]["time"])


def _config_order(config: RunConfiguration) -> tuple[Any, ...]:
    replicas = 99 if config.max_task_replicas is None else config.max_task_replicas
    registry = {None: 0, "memory": 1, "disk": 2}.get(config.task_registry, 3)
    return (config.target, registry, replicas, not config.scatter)


def _execution_rows(history: History) -> list[dict[str, Any]]:
    run_id, label, t0 = _identity(history)
    end_of_run = history[-1]["time"]
    invokes: dict[Any, Mapping[str, Any]] = {}
    outcomes: dict[Any, Mapping[str, Any]] = {}
    suppressed: set[tuple[Any, tuple[int, ...], Any]] = set()
    consumed: set[tuple[Any, tuple[int, ...]]] = set()
    for event in history:
        kind = event["type"]
        if kind == "invoke":
            invokes[event["execution"]] = event
            if event["step"] > 0:
                consumed.add((event["task_id"], tuple(event["index"])[:-1]))
        elif kind in ("ok", "fail", "info"):
            outcomes.setdefault(event.get("execution"), event)
        elif kind == "duplicate-suppressed":
            suppressed.add((event["task_id"], tuple(event["index"]), event.get("key")))
        elif kind == "deliver":
            consumed.add((event["task_id"], tuple(event["index"])[:-1]))
    deaths = [(f["worker"], f["landed_at"]) for f in _faults(history)]
    used = _used_executions(invokes, outcomes, suppressed, consumed)
    rows = []
    for execution, invoke in invokes.items():
        outcome = outcomes.get(execution)
        start = invoke["time"]
        end = outcome["time"] if outcome is not None else end_of_run
        if outcome is None or outcome["type"] == "info":
            # The bar ends when the worker died, not when the harness noticed.
            killed = [t for worker, t in deaths if worker == invoke.get("worker") and t >= start]
            end = min([end, *killed])
        rows.append({
            "run_id": run_id, "label": label, "execution": execution,
            "task_id": invoke["task_id"], "index": _index_text(invoke["index"]),
            "step": invoke["step"], "key": invoke.get("key"), "worker": invoke.get("worker"),
            "pid": invoke.get("pid"), "start": start - t0, "end": end - t0,
            "seconds": max(end - start, 0.0),
            "outcome": outcome["type"] if outcome is not None else "unfinished",
            "used": execution in used, "invoke_seq": invoke["seq"],
        })
    return rows


def _used_executions(
    invokes: Mapping[Any, Mapping[str, Any]],
    outcomes: Mapping[Any, Mapping[str, Any]],
    suppressed: set[tuple[Any, tuple[int, ...], Any]],
    consumed: set[tuple[Any, tuple[int, ...]]],
) -> set[Any]:
    last_ok: dict[tuple[Any, tuple[int, ...]], tuple[int, Any]] = {}
    for execution, invoke in invokes.items():
        outcome = outcomes.get(execution)
        lineage = (invoke["task_id"], tuple(invoke["index"]))
        if outcome is None or outcome["type"] != "ok" or lineage not in consumed:
            continue
        if (*lineage, invoke.get("key")) in suppressed:
            continue
        if lineage not in last_ok or outcome["seq"] > last_ok[lineage][0]:
            last_ok[lineage] = (outcome["seq"], execution)
    return {execution for _, execution in last_ok.values()}


def _recovery_rows(history: History) -> list[dict[str, Any]]:
    run_id, label, _ = _identity(history)
    faults = sorted(_faults(history), key=lambda f: f["landed_at"])
    if not faults:
        return []
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for event in history:
        by_type.setdefault(event["type"], []).append(event)
    rows = []
    for (task_id, index, step), fault in _disturbed_steps(history, faults, by_type).items():
        landed = fault["landed_at"]
        steps = [e for e in by_type.get("invoke", []) if _is_step(e, task_id, index, step)]
        resubmits = [
            e for e in by_type.get("submit", [])
            if _is_step(e, task_id, index, step) and e.get("reason") in RESUBMIT_REASONS
        ]
        delivered = [
            e for e in by_type.get("deliver", [])
            if e["task_id"] == task_id and tuple(e["index"])[: len(index)] == index
        ]
        rows.append({
            "run_id": run_id, "label": label, "fault_id": fault.get("fault_id"),
            "kind": fault.get("kind"), "task_id": task_id, "index": _index_text(index),
            "step": step,
            "to_resubmit": _seconds_to_first(resubmits, landed),
            "to_reexecute": _seconds_to_first(steps, landed),
            "to_deliver": _seconds_to_first(delivered, landed),
        })
    return rows


def _disturbed_steps(
    history: History,
    faults: Sequence[Mapping[str, Any]],
    by_type: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[tuple[Any, tuple[int, ...], int], Mapping[str, Any]]:
    """Each step input a fault disturbed, with that fault: the executions it cut short,
    then the resubmissions that followed it (charged to the latest fault before them).
    """
    outcomes = {e.get("execution"): e for e in history if e["type"] in ("ok", "fail", "info")}
    disturbed: dict[tuple[Any, tuple[int, ...], int], Mapping[str, Any]] = {}
    for fault in faults:
        for invoke in by_type.get("invoke", []):
            outcome = outcomes.get(invoke["execution"])
            cut_short = outcome is None or outcome["type"] == "info"
            ended = outcome["time"] if outcome is not None else float("inf")
            if (cut_short and invoke.get("worker") == fault.get("worker")
                    and invoke["time"] <= fault["landed_at"] <= ended):
                step = (invoke["task_id"], tuple(invoke["index"]), invoke["step"])
                disturbed.setdefault(step, fault)
    for submit in by_type.get("submit", []):
        earlier = [f for f in faults if f["landed_at"] <= submit["time"]]
        if submit.get("reason") in RESUBMIT_REASONS and earlier:
            step = (submit["task_id"], tuple(submit["index"]), submit["step"])
            disturbed.setdefault(step, earlier[-1])
    return disturbed


def _is_step(event: Mapping[str, Any], task_id: Any, index: tuple[int, ...], step: int) -> bool:
    return bool(
        event["task_id"] == task_id and tuple(event["index"]) == index and event["step"] == step
    )


def _seconds_to_first(events: Sequence[Mapping[str, Any]], since: float) -> float:
    times = [e["time"] - since for e in events if e["time"] >= since]
    return min(times) if times else np.nan
