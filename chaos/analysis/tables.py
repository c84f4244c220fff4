"""Tables of runs, executions and recoveries: what the campaign's figures and gates measure.

Times are seconds since the run's `run-start`. Every table has `run_id` and `label`
(the configuration), so tables of many runs group and join on them.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from chaos.analysis.runs import CheckedRun, History
from chaos.judge import RunConfiguration
from chaos.spec import SCHEDULER_KINDS

RESUBMIT_REASONS = frozenset({"lost-input", "killed-worker", "step-timeout", "resumed"})

EXECUTION_COLUMNS = [
    "run_id", "label", "execution", "task_id", "index", "step", "key", "worker", "pid",
    "start", "end", "seconds", "cpu", "outcome", "used", "invoke_seq",
]


def execution_table(histories: Iterable[History]) -> pd.DataFrame:
    """One row per execution (attempt on a worker), with `used`: did its result count?

    An execution is used when its result is the one the system accepted for its step
    input: the attempt of the first `step-completed` (the library names it by key), or,
    for a target that does not say, the first successful one not suppressed as a
    duplicate; and its step's output went on to the next step or to delivery.
    Everything else (killed, raised, duplicate, orphaned) is wasted work.

    `seconds` is wall time; `cpu` is the CPU time of the worker thread that ran it (from
    the probes; for an execution cut short, up to its last probe report), which is what
    wasted work counts: sleeps and the harness's holds are not work.
    """
    rows = [row for history in histories for row in _execution_rows(history)]
    return pd.DataFrame(rows, columns=EXECUTION_COLUMNS)


def recovery_table(histories: Iterable[History]) -> pd.DataFrame:
    """One row per (fault, step input it disturbed): seconds from the kill landing to the
    step's resubmission, its re-execution, and the first delivery that came from it.
    NaN means it never happened in the run (e.g. the task was lost). `until_end` is the
    seconds from the landing to the run's end (how long a step that never recovered was
    waited for), and `task_failed` whether its task was reported failed.
    `without_workers` is how much of that recovery (to the delivery, or to the end) the
    cluster spent with no worker able to run: none there, or only frozen ones. That is
    waiting for capacity, which no library shortens.
    `other_faults` counts the other faults in effect while it recovered: those that landed
    before its delivery, a freeze that landed before it and had not yet ended, and an
    earlier loss not yet made good (fewer workers than at the start when it landed). Its
    delivery waited on them too (a freeze of its next step's worker or of its input's
    holder, the fleet cut further, a smaller fleet doing all the work).
    """
    rows = [row for history in histories for row in _recovery_rows(history)]
    columns = ["run_id", "label", "fault_id", "kind", "task_id", "index", "step",
               "to_resubmit", "to_reexecute", "to_deliver", "until_end", "task_failed",
               "without_workers", "other_faults"]
    return pd.DataFrame(rows, columns=columns)


def run_table(runs: Sequence[CheckedRun], executions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run: configuration, faults, verdict counts, wasted work and makespan."""
    if executions is None:
        executions = execution_table(run.history for run in runs)
    wasted = executions[~executions["used"].astype(bool)].groupby("run_id")["cpu"].sum()
    busy = executions.groupby("run_id")["cpu"].sum()
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
            "faults": len(landed_faults(run.history)),
            "scheduled_faults": scheduled_faults(start),
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


# ---------------------------------------------------------------------------- helpers


def run_identity(history: History) -> tuple[str, str, float]:
    start = history[0]
    return (str(start.get("run_id", "")), RunConfiguration.from_run_start(start).label,
            float(start["time"]))


def index_text(index: Sequence[int]) -> str:
    return ".".join(str(i) for i in index) or "-"


def landed_faults(history: History) -> list[Mapping[str, Any]]:
    faults: list[Mapping[str, Any]] = []
    for event in history:
        if event["type"] == "fault" and event.get("fired_at") is not None:
            landed = event.get("landed_at")
            faults.append({**event, "landed_at": event["fired_at"] if landed is None else landed})
    return faults


def scheduled_faults(run_start: Mapping[str, Any]) -> float:
    # The schedule's format is the harness's; a count we cannot read is unknown (NaN).
    faults = (run_start.get("schedule") or {}).get("faults")
    return float(len(faults)) if isinstance(faults, list) else np.nan


def _makespan(history: History) -> float:
    end = history[-1]
    if end["type"] == "run-end" and end.get("makespan") is not None:
        return float(end["makespan"])
    return float(end["time"] - history[0]["time"])


def _execution_rows(history: History) -> list[dict[str, Any]]:
    run_id, label, t0 = run_identity(history)
    end_of_run = history[-1]["time"]
    invokes: dict[Any, Mapping[str, Any]] = {}
    outcomes: dict[Any, Mapping[str, Any]] = {}
    cpu: dict[Any, float] = {}
    suppressed: set[tuple[Any, tuple[int, ...], Any]] = set()
    consumed: set[tuple[Any, tuple[int, ...]]] = set()
    accepted: dict[tuple[Any, tuple[int, ...]], Any] = {}
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
        elif kind == "step-completed":
            accepted.setdefault((event["task_id"], tuple(event["index"])), event.get("key"))
        elif kind == "deliver":
            consumed.add((event["task_id"], tuple(event["index"])[:-1]))
        if kind in ("probe", "ok", "fail") and event.get("cpu") is not None:
            cpu[event.get("execution")] = float(event["cpu"])
    deaths = [(f["worker"], f["landed_at"]) for f in landed_faults(history)]
    used = _used_executions(invokes, outcomes, suppressed, consumed, accepted)
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
            "task_id": invoke["task_id"], "index": index_text(invoke["index"]),
            "step": invoke["step"], "key": invoke.get("key"), "worker": invoke.get("worker"),
            "pid": invoke.get("pid"), "start": start - t0, "end": end - t0,
            "seconds": max(end - start, 0.0), "cpu": cpu.get(execution, 0.0),
            "outcome": outcome["type"] if outcome is not None else "unfinished",
            "used": execution in used, "invoke_seq": invoke["seq"],
        })
    return rows


def _used_executions(
    invokes: Mapping[Any, Mapping[str, Any]],
    outcomes: Mapping[Any, Mapping[str, Any]],
    suppressed: set[tuple[Any, tuple[int, ...], Any]],
    consumed: set[tuple[Any, tuple[int, ...]]],
    accepted: dict[tuple[Any, tuple[int, ...]], Any],
) -> set[Any]:
    first_ok: dict[tuple[Any, tuple[int, ...]], tuple[int, Any]] = {}
    for execution, invoke in invokes.items():
        outcome = outcomes.get(execution)
        lineage = (invoke["task_id"], tuple(invoke["index"]))
        if outcome is None or outcome["type"] != "ok" or lineage not in consumed:
            continue
        if lineage in accepted:
            if invoke.get("key") != accepted[lineage]:
                continue  # the system used another attempt's result
        elif (*lineage, invoke.get("key")) in suppressed:
            continue
        if lineage not in first_ok or outcome["seq"] < first_ok[lineage][0]:
            first_ok[lineage] = (outcome["seq"], execution)
    return {execution for _, execution in first_ok.values()}


def _recovery_rows(history: History) -> list[dict[str, Any]]:
    run_id, label, _ = run_identity(history)
    faults = sorted(landed_faults(history), key=lambda f: f["landed_at"])
    if not faults:
        return []
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for event in history:
        by_type.setdefault(event["type"], []).append(event)
    rows = []
    end = history[-1]["time"]
    failed = {e["task_id"] for e in by_type.get("task-failed", [])}
    freezes = _freeze_spans(history)
    workerless = _workerless_spans(history, freezes, faults)
    frozen_until = {fault_id: stop for fault_id, _, _, stop in freezes}
    short_at = _fleet_short(history)
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
        to_deliver = _seconds_to_first(delivered, landed)
        until_end = max(end - landed, 0.0)
        recovered_at = landed + (until_end if np.isnan(to_deliver) else to_deliver)
        rows.append({
            "run_id": run_id, "label": label, "fault_id": fault.get("fault_id"),
            "kind": fault.get("kind"), "task_id": task_id, "index": index_text(index),
            "step": step,
            "to_resubmit": _seconds_to_first(resubmits, landed),
            "to_reexecute": _seconds_to_first(steps, landed),
            "to_deliver": to_deliver, "until_end": until_end, "task_failed": task_id in failed,
            "without_workers": sum(max(0.0, min(stop, recovered_at) - max(start, landed))
                                   for start, stop in workerless),
            "other_faults": sum(_in_effect(other, fault, recovered_at, frozen_until, end,
                                           short_at(landed))
                                for other in faults),
        })
    return rows


def _in_effect(other: Mapping[str, Any], fault: Mapping[str, Any], recovered_at: float,
               frozen_until: Mapping[Any, float], end: float, fleet_short: bool) -> bool:
    """Whether `other` weighed on `fault`'s recovery: it landed during it; or it landed
    before and its worker was still out: a freeze not yet ended, or a lost worker not
    yet replaced (`fleet_short`: fewer workers than at the run's start when `fault`
    landed; nightly seed 4848 had a kill recover in 1.3 s on the one worker that two
    earlier faults had left, the other two refilled a second later)."""
    if other is fault:
        return False
    landed = fault["landed_at"]
    if landed < other["landed_at"] < recovered_at:
        return True
    if other["landed_at"] > landed:
        return False
    if other.get("kind") == "freeze":
        return bool(frozen_until.get(other.get("fault_id"), end) > landed)
    return fleet_short


def _fleet_short(history: History) -> Callable[[float], bool]:
    """Whether, just before a time, fewer workers were registered than at the run's
    start (from `worker-added` and `worker-removed`)."""
    start = len([w for w in history[0].get("workers") or () if isinstance(w, Mapping)])
    changes = sorted((event["time"], 1 if event["type"] == "worker-added" else -1)
                     for event in history
                     if event["type"] in ("worker-added", "worker-removed"))
    times = [when for when, _ in changes]
    counts = list(itertools.accumulate(change for _, change in changes))

    def short(when: float) -> bool:
        before = bisect.bisect_left(times, when)
        return before > 0 and counts[before - 1] < 0

    return short if start else (lambda when: False)


def _freeze_spans(history: History) -> list[tuple[Any, str, float, float]]:
    """(fault_id, worker, landed, ended) of every freeze that landed on a worker; one
    the history never saw end lasts to the run's end."""
    ended = {e.get("fault_id"): e["time"] for e in history if e["type"] == "fault-ended"}
    end_of_run = float(history[-1]["time"])
    return [(e.get("fault_id"), e["worker"], e["landed_at"],
             ended.get(e.get("fault_id"), end_of_run))
            for e in history if e["type"] == "fault" and e.get("kind") == "freeze"
            and e.get("landed_at") is not None and e.get("worker")]


def _workerless_spans(history: History,
                      freezes: Sequence[tuple[Any, str, float, float]],
                      faults: Sequence[Mapping[str, Any]]
                      ) -> list[tuple[float, float]]:
    """(start, end) times when no worker could run a task: none registered, or only
    frozen ones (`freezes`, from `_freeze_spans`). From the workers at `run-start`,
    then `worker-added` and `worker-removed`, and the freezes' starts and ends. A lost
    scheduler (`faults` of a scheduler kind) takes every registration with it, and no
    `worker-removed` comes from a dead scheduler: none is registered until its
    successor's `worker-added` (the deployment's outage, not the library's time)."""
    live = {w["address"] for w in history[0].get("workers") or () if isinstance(w, Mapping)}
    changes: list[tuple[float, str, str]] = [
        (event["time"], event["type"], event["worker"]) for event in history
        if event["type"] in ("worker-added", "worker-removed")]
    for _, worker, landed, ended in freezes:
        changes += [(landed, "frozen", worker), (ended, "thawed", worker)]
    changes += [(fault["landed_at"], "scheduler-lost", "") for fault in faults
                if fault.get("kind") in SCHEDULER_KINDS]
    frozen: set[str] = set()  # (a thaw ends every freeze of its worker: coordinator.py)
    spans: list[tuple[float, float]] = []
    since = None if live else history[0]["time"]
    for when, change, worker in sorted(changes, key=lambda c: c[0]):
        if change == "worker-added":
            live.add(worker)
        elif change == "worker-removed":
            live.discard(worker)
        elif change == "scheduler-lost":
            live.clear()
        elif change == "frozen":
            frozen.add(worker)
        else:
            frozen.discard(worker)
        able = live - frozen
        if not able and since is None:
            since = when
        elif able and since is not None:
            spans.append((since, when))
            since = None
    if since is not None:
        spans.append((since, history[-1]["time"]))
    return spans


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
