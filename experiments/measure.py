"""What one real run measured, from its history (plus the checker's verdict).

A pure function of the history: `goodput` is useful compute seconds (the accepted
executions of every step) over workers x makespan; `wasted_seconds` is all the time
workers spent executing steps minus that useful time (killed executions, and
duplicates whose result was not used).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos import Verdict


@dataclass(frozen=True)
class RunMetrics:
    makespan: float
    useful_seconds: float
    busy_seconds: float
    kills: int
    kills_by_kind: Mapping[str, int]
    delivered: int
    expected: int
    failed: int  # tasks reported failed
    lost: int  # outputs silently lost (a violation)
    duplicated: int  # outputs delivered twice (a violation)
    violations: int
    violation_kinds: str
    verdict: str
    run_status: str
    peak_inflight_steps: int

    @property
    def wasted_seconds(self) -> float:
        return max(0.0, self.busy_seconds - self.useful_seconds)

    def goodput(self, workers: int) -> float:
        return self.useful_seconds / (workers * self.makespan) if self.makespan > 0 else 0.0


def measure(history: Sequence[Mapping[str, Any]], verdict: Verdict) -> RunMetrics:
    """The figures of one run, from its history and its verdict."""
    end = next((e for e in reversed(history) if e["type"] == "run-end"), None)
    run_end_time = end["time"] if end else history[-1]["time"]
    accepted = {e["key"] for e in history if e["type"] == "step-completed"}
    invokes: dict[str, Mapping[str, Any]] = {}
    outcomes: dict[str, Mapping[str, Any]] = {}
    faults = [e for e in history if e["type"] == "fault"]
    for event in history:
        if event["type"] == "invoke":
            invokes[event["execution"]] = event
        elif event["type"] in ("ok", "fail", "info") and event.get("execution"):
            outcomes.setdefault(event["execution"], event)
    useful = busy = 0.0
    used_keys: set[str] = set()
    for execution, invoke in invokes.items():
        outcome = outcomes.get(execution)
        if outcome is not None and outcome["type"] == "ok":
            busy += outcome["duration"]
            if invoke.get("key") in accepted and invoke["key"] not in used_keys:
                used_keys.add(invoke["key"])
                useful += outcome["duration"]
            continue
        busy += max(0.0, _cut_at(invoke, outcome, faults, run_end_time) - invoke["time"])
    kinds = Counter(e["kind"] for e in faults if e.get("landed_at") or e.get("noticed_at"))
    by_kind = verdict.by_kind()
    return RunMetrics(
        makespan=float(end["makespan"]) if end else run_end_time - history[0]["time"],
        useful_seconds=useful, busy_seconds=busy,
        kills=sum(kinds.values()), kills_by_kind=dict(kinds),
        delivered=verdict.deliveries.delivered, expected=verdict.deliveries.expected,
        failed=len({f.task_id for f in verdict.reported_failures}),
        lost=len(by_kind["lost"]), duplicated=len(by_kind["duplicated"]),
        violations=len(verdict.violations),
        violation_kinds=";".join(f"{k}={len(v)}" for k, v in by_kind.items() if v),
        verdict=verdict.outcome, run_status=verdict.run_status,
        peak_inflight_steps=_peak_inflight(history),
    )


def _cut_at(invoke: Mapping[str, Any], outcome: Mapping[str, Any] | None,
            faults: Sequence[Mapping[str, Any]], run_end: float) -> float:
    """When an execution without `ok` stopped: its worker's loss, its failure, or the end."""
    if outcome is not None and outcome["type"] == "fail":
        return float(outcome["time"])
    landed = [f.get("landed_at") or f.get("noticed_at") or f["fired_at"] for f in faults
              if f.get("worker") == invoke.get("worker")]
    after = [t for t in landed if t is not None and t >= invoke["time"]]
    return min(after) if after else run_end


def _peak_inflight(history: Sequence[Mapping[str, Any]]) -> int:
    """Most steps unfinished at once: what a registry holds at its fullest."""
    open_steps: set[tuple[Any, ...]] = set()
    peak = 0
    for event in history:
        if event["type"] == "submit":
            open_steps.add((event["task_id"], tuple(event["index"]), event["step"]))
            peak = max(peak, len(open_steps))
        elif event["type"] == "step-completed":
            open_steps.discard((event["task_id"], tuple(event["index"]), event["step"]))
        elif event["type"] == "task-failed":
            open_steps = {s for s in open_steps if s[0] != event["task_id"]}
    return peak
