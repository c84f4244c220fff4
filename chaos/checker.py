"""Jepsen-style checker: a pure function of one run's history and the workload's oracle.

`check_history(events, oracle)` returns a `Verdict` with the evidence, as Jepsen's
`total-queue` and `set-full` checkers do, never a bare boolean:

- lost: expected outputs never delivered and never reported failed (silent loss);
- duplicated: outputs delivered more than once;
- unexpected: outputs delivered that the oracle never expected;
- corrupted: outputs delivered with a digest other than the oracle's;
- reported-failed: tasks the system said had failed, when the expected-outcome model
  (`chaos.model`) says the configuration must have delivered them;
- hung: a run that ended "hung", or a history with no run-end (cut short).

Every violation carries the task id, the output index and the `seq` numbers of the
events behind it. Duplicate *executions* are information, not violations: execution is
at-least-once, delivery must be exactly-once. The event format is docs/history.md.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from chaos.errors import ChaosError
from chaos.history import HISTORY_FILE, HISTORY_VERSION
from chaos.model import DEFAULT_MODEL, ExpectedOutcome, OutcomeModel, RunConfiguration, RunFacts

TaskId = str | int
OutputKey = tuple[TaskId, tuple[int, ...]]
# The oracle: the fault-free digest of every expected output, by (task_id, index).
Oracle = Mapping[OutputKey, str]

ViolationKind = Literal["lost", "duplicated", "unexpected", "corrupted", "reported-failed", "hung"]
VIOLATION_KINDS: tuple[ViolationKind, ...] = (
    "lost", "duplicated", "unexpected", "corrupted", "reported-failed", "hung",
)
VerdictOutcome = Literal["valid", "invalid", "hung"]


class HistoryError(ChaosError, ValueError):
    """A history that breaks the format of docs/history.md; the message names the line."""


# ---------------------------------------------------------------------------- public API


def check_history(
    events: Iterable[Mapping[str, Any]],
    oracle: Oracle,
    *,
    model: OutcomeModel = DEFAULT_MODEL,
) -> Verdict:
    """Judge one run: the evidence of every violation, against `oracle` and `model`.

    `events` is one run's history in file order (see `load_history`). `oracle` maps
    every expected `(task_id, index)` to its fault-free digest; `index` is a tuple.
    Raises `HistoryError` when the history breaks the format (not when the run failed).
    """
    history = _validated(events)
    log = _RunLog.read(history)
    expected = model.expect(RunFacts.from_events(history))
    failures = tuple(
        ReportedFailure(task_id, reason, seq, expected.failure_excuse(task_id))
        for task_id, (seq, reason) in log.failed.items()
    )
    violations = (
        _delivery_violations(log, oracle)
        + _failure_violations(log, failures, expected)
        + _undelivered_violations(log, oracle)
    )
    config = RunConfiguration.from_run_start(history[0])
    status = log.run_status
    outcome: VerdictOutcome = (
        "hung" if status in ("hung", "cut-short") else "invalid" if violations else "valid"
    )
    return Verdict(
        run_id=str(history[0].get("run_id", "")),
        target=config.target,
        config=dict(history[0].get("config") or {}),
        label=config.label,
        outcome=outcome,
        run_status=status,
        run_error=log.run_error,
        expected=expected,
        violations=violations,
        reported_failures=failures,
        repeated_executions=log.repeated_executions(),
        deliveries=_delivery_counts(log, oracle, violations),
        executions=log.execution_counts(),
        last_seq=int(history[-1]["seq"]),
    )


def load_history(path: str | os.PathLike[str]) -> tuple[dict[str, Any], ...]:
    """The events of one history file, or of `DIR/history.jsonl` when given a folder.

    A run killed mid-write may leave a torn last line: it is dropped (the history then
    has no run-end, so the checker calls the run cut short). A bad line elsewhere raises.
    """
    file = Path(path)
    if file.is_dir():
        file = file / HISTORY_FILE
    if not file.is_file():
        raise HistoryError(
            f"no history at {file}; pass a history.jsonl file or the run folder holding one "
            "(`python -m chaos run --out DIR` writes DIR/history.jsonl)."
        )
    lines = file.read_text(encoding="utf-8").splitlines()
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break  # a torn final write: the run was cut short
            raise HistoryError(
                f"{file}:{number} is not JSON ({error}); each line must be one event "
                "object (docs/history.md). Fix or truncate the file at that line."
            ) from None
        events.append(event)
    return tuple(events)


def oracle_from_history(events: Iterable[Mapping[str, Any]]) -> dict[OutputKey, str]:
    """The oracle a fault-free reference run gives: the digest of each delivered output.

    Raises `HistoryError` when the run delivered an output twice with different digests,
    because such a run cannot serve as a reference.
    """
    oracle: dict[OutputKey, str] = {}
    for event in events:
        if event.get("type") != "deliver":
            continue
        key = (event["task_id"], tuple(event["index"]))
        if key in oracle and oracle[key] != event["digest"]:
            raise HistoryError(
                f"output {key!r} was delivered with two digests ({oracle[key][:12]}..., "
                f"{event['digest'][:12]}...) at seq {event['seq']}; a reference run must be "
                "deterministic. Use a fault-free run of a seeded workload."
            )
        oracle[key] = event["digest"]
    return oracle


# ---------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Violation:
    """One piece of evidence: what went wrong, for which output, and the events behind it.

    `task_id` and `index` are None for run-level evidence (a hung run).
    """

    kind: ViolationKind
    task_id: TaskId | None
    index: tuple[int, ...] | None
    seqs: tuple[int, ...]
    detail: str


@dataclass(frozen=True)
class ReportedFailure:
    """A `task-failed` event. `excuse` says why the model allows it; None means it did not."""

    task_id: TaskId
    reason: str
    seq: int
    excuse: str | None


@dataclass(frozen=True)
class RepeatedExecution:
    """A step input executed more than once (information: execution is at-least-once)."""

    task_id: TaskId
    index: tuple[int, ...]
    step: int
    executions: int
    completions: int
    seqs: tuple[int, ...]


@dataclass(frozen=True)
class DeliveryCounts:
    expected: int
    delivered: int
    deliveries: int
    lost: int
    duplicated: int
    unexpected: int
    corrupted: int
    reported_failed: int


@dataclass(frozen=True)
class ExecutionCounts:
    executions: int
    completed: int
    failed: int
    interrupted: int
    unfinished: int
    re_executions: int
    duplicate_completions: int
    suppressed_duplicates: int


@dataclass(frozen=True)
class Verdict:
    """The checker's judgement of one run, with all its evidence. JSON via to_dict/from_dict."""

    run_id: str
    target: str
    config: Mapping[str, Any]
    label: str
    outcome: VerdictOutcome
    run_status: str
    run_error: str | None
    expected: ExpectedOutcome
    violations: tuple[Violation, ...]
    reported_failures: tuple[ReportedFailure, ...]
    repeated_executions: tuple[RepeatedExecution, ...]
    deliveries: DeliveryCounts
    executions: ExecutionCounts
    last_seq: int

    @property
    def valid(self) -> bool:
        return self.outcome == "valid"

    def by_kind(self) -> dict[ViolationKind, tuple[Violation, ...]]:
        """Violations grouped by kind; every kind is present, most empty."""
        groups: dict[ViolationKind, list[Violation]] = {kind: [] for kind in VIOLATION_KINDS}
        for violation in self.violations:
            groups[violation.kind].append(violation)
        return {kind: tuple(items) for kind, items in groups.items()}

    def summary(self) -> str:
        """One line for a terminal: outcome, then the non-zero violation counts."""
        counts = [f"{kind}={len(items)}" for kind, items in self.by_kind().items() if items]
        found = ", ".join(counts) if counts else "no violations"
        return (
            f"{self.run_id} [{self.label}] {self.outcome.upper()}: {found}; "
            f"{self.deliveries.delivered}/{self.deliveries.expected} delivered; "
            f"expected {self.expected.explain()}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "target": self.target,
            "config": dict(self.config),
            "label": self.label,
            "outcome": self.outcome,
            "valid": self.valid,
            "run_status": self.run_status,
            "run_error": self.run_error,
            "expected": self.expected.to_dict(),
            "violations": [_violation_to_dict(v) for v in self.violations],
            "reported_failures": [vars(f).copy() for f in self.reported_failures],
            "repeated_executions": [
                {**vars(r), "index": list(r.index), "seqs": list(r.seqs)}
                for r in self.repeated_executions
            ],
            "deliveries": vars(self.deliveries).copy(),
            "executions": vars(self.executions).copy(),
            "last_seq": self.last_seq,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(
            run_id=data["run_id"],
            target=data["target"],
            config=dict(data["config"]),
            label=data["label"],
            outcome=data["outcome"],
            run_status=data["run_status"],
            run_error=data.get("run_error"),
            expected=ExpectedOutcome.from_dict(data["expected"]),
            violations=tuple(_violation_from_dict(v) for v in data["violations"]),
            reported_failures=tuple(ReportedFailure(**f) for f in data["reported_failures"]),
            repeated_executions=tuple(
                RepeatedExecution(**{**r, "index": tuple(r["index"]), "seqs": tuple(r["seqs"])})
                for r in data["repeated_executions"]
            ),
            deliveries=DeliveryCounts(**data["deliveries"]),
            executions=ExecutionCounts(**data["executions"]),
            last_seq=data["last_seq"],
        )


# ---------------------------------------------------------------------------- internals


def _validated(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    history = list(events)
    if not history or history[0].get("type") != "run-start":
        first = history[0].get("type") if history else "nothing"
        raise HistoryError(
            f"a history must open with a run-start event, but it opens with {first!r}; "
            "pass one run's complete history.jsonl (docs/history.md)."
        )
    version = (history[0].get("versions") or {}).get("history", HISTORY_VERSION)
    if version != HISTORY_VERSION:
        raise HistoryError(
            f"the history is in format version {version!r} (run-start.versions.history), "
            f"but this checker reads version {HISTORY_VERSION}; fields may have been renamed. "
            "Update chaos.checker to the new docs/history.md, or check it with the version "
            "of the project that wrote it."
        )
    previous = -1
    for position, event in enumerate(history):
        seq = event.get("seq")
        if not isinstance(seq, int) or seq <= previous:
            raise HistoryError(
                f"event {position} (type {event.get('type')!r}) has seq={seq!r} after "
                f"seq={previous}; seq must be an int, strictly increasing. The history "
                "was reordered or merged from two runs."
            )
        previous = seq
    return history


@dataclass
class _Execution:
    task_id: TaskId
    index: tuple[int, ...]
    step: int
    key: str | None
    invoke_seq: int
    outcome: str | None = None
    outcome_seq: int | None = None


class _RunLog:
    """The events of one run, indexed for the checks (built once, read many times)."""

    def __init__(self) -> None:
        self.deliveries: dict[OutputKey, list[Mapping[str, Any]]] = defaultdict(list)
        self.failed: dict[TaskId, tuple[int, str]] = {}
        self.executions: dict[Any, _Execution] = {}
        self.trail: dict[TaskId, list[tuple[tuple[int, ...] | None, int]]] = defaultdict(list)
        self.suppressed = 0
        self.run_status = "cut-short"
        self.run_error: str | None = None
        self.run_end_seq: int | None = None
        self.last_seq = 0

    @classmethod
    def read(cls, history: Sequence[Mapping[str, Any]]) -> _RunLog:
        log = cls()
        for event in history:
            log._add(event)
        return log

    def _add(self, event: Mapping[str, Any]) -> None:
        kind, seq = event["type"], int(event["seq"])
        self.last_seq = seq
        if kind == "deliver":
            key = (event["task_id"], tuple(event["index"]))
            self.deliveries[key].append(event)
            self.trail[event["task_id"]].append((key[1], seq))
        elif kind == "invoke":
            execution = _Execution(
                event["task_id"], tuple(event["index"]), int(event["step"]),
                event.get("key"), seq,
            )
            self.executions[event["execution"]] = execution
            self.trail[execution.task_id].append((execution.index, seq))
        elif kind in ("ok", "fail", "info"):
            ended = self.executions.get(event.get("execution"))
            if ended is not None and ended.outcome is None:
                ended.outcome, ended.outcome_seq = kind, seq
                self.trail[ended.task_id].append((ended.index, seq))
        elif kind in ("submit", "step-error", "duplicate-suppressed"):
            self.trail[event["task_id"]].append((tuple(event["index"]), seq))
            self.suppressed += kind == "duplicate-suppressed"
        elif kind == "task-failed":
            self.failed.setdefault(event["task_id"], (seq, str(event.get("reason", ""))))
            self.trail[event["task_id"]].append((None, seq))
        elif kind == "run-end":
            self.run_status = str(event.get("status", "unknown"))
            self.run_error = event.get("error")
            self.run_end_seq = seq
        elif "task_id" in event:
            # An event type added after this checker (e.g. step-completed): still evidence.
            lineage = tuple(event["index"]) if isinstance(event.get("index"), list) else None
            self.trail[event["task_id"]].append((lineage, seq))

    def seqs_behind(self, task_id: TaskId, index: tuple[int, ...]) -> tuple[int, ...]:
        """The seqs of the events on the lineage of output `index` of `task_id`."""
        return tuple(
            seq for lineage, seq in self.trail.get(task_id, ())
            if lineage is None or index[: len(lineage)] == lineage
        )

    def repeated_executions(self) -> tuple[RepeatedExecution, ...]:
        groups: dict[tuple[TaskId, tuple[int, ...], int], list[_Execution]] = defaultdict(list)
        for execution in self.executions.values():
            groups[(execution.task_id, execution.index, execution.step)].append(execution)
        return tuple(
            RepeatedExecution(
                task_id, index, step,
                executions=len(group),
                completions=sum(1 for e in group if e.outcome == "ok"),
                seqs=tuple(e.invoke_seq for e in group),
            )
            for (task_id, index, step), group in groups.items()
            if len(group) > 1
        )

    def execution_counts(self) -> ExecutionCounts:
        outcomes = Counter(e.outcome for e in self.executions.values())
        repeated = self.repeated_executions()
        return ExecutionCounts(
            executions=len(self.executions),
            completed=outcomes["ok"],
            failed=outcomes["fail"],
            interrupted=outcomes["info"],
            unfinished=outcomes[None],
            re_executions=sum(r.executions - 1 for r in repeated),
            duplicate_completions=sum(max(r.completions - 1, 0) for r in repeated),
            suppressed_duplicates=self.suppressed,
        )


def _delivery_violations(log: _RunLog, oracle: Oracle) -> tuple[Violation, ...]:
    found: list[Violation] = []
    for (task_id, index), events in log.deliveries.items():
        seqs = tuple(int(e["seq"]) for e in events)
        if (task_id, index) not in oracle:
            found.append(Violation(
                "unexpected", task_id, index, seqs,
                f"delivered {len(events)} time(s), but the oracle expects no such output",
            ))
            continue
        if len(events) > 1:
            found.append(Violation(
                "duplicated", task_id, index, seqs, f"delivered {len(events)} times"
            ))
        truth = oracle[(task_id, index)]
        for event in events:
            if event.get("digest") != truth:
                found.append(Violation(
                    "corrupted", task_id, index, (int(event["seq"]),),
                    f"digest {str(event.get('digest'))[:12]}... != oracle's {truth[:12]}...",
                ))
    return tuple(found)


def _failure_violations(
    log: _RunLog, failures: Sequence[ReportedFailure], expected: ExpectedOutcome
) -> tuple[Violation, ...]:
    return tuple(
        Violation(
            "reported-failed", failure.task_id, None,
            tuple(seq for _, seq in log.trail.get(failure.task_id, ())),
            f"reported failed ({failure.reason}), but {expected.explain()}",
        )
        for failure in failures
        if failure.excuse is None
    )


def _undelivered_violations(log: _RunLog, oracle: Oracle) -> tuple[Violation, ...]:
    ended = log.run_status not in ("hung", "cut-short")
    found: list[Violation] = []
    if not ended:
        where = log.run_end_seq if log.run_end_seq is not None else log.last_seq
        detail = (
            "the run ended with status 'hung'" if log.run_end_seq is not None
            else f"the history stops at seq {log.last_seq} with no run-end: cut short"
        )
        found.append(Violation("hung", None, None, (where,), detail))
    for task_id, index in oracle:
        if (task_id, index) in log.deliveries or task_id in log.failed:
            continue
        seqs = log.seqs_behind(task_id, index)
        if ended:
            detail = "never delivered and never reported failed: silent loss"
            found.append(Violation("lost", task_id, index, seqs, detail))
        else:
            detail = "not delivered (nor reported failed) when the run stopped"
            found.append(Violation("hung", task_id, index, seqs, detail))
    return tuple(found)


def _delivery_counts(
    log: _RunLog, oracle: Oracle, violations: Sequence[Violation]
) -> DeliveryCounts:
    kinds = Counter(v.kind for v in violations)
    delivered = sum(1 for key in log.deliveries if key in oracle)
    return DeliveryCounts(
        expected=len(oracle),
        delivered=delivered,
        deliveries=sum(len(events) for events in log.deliveries.values()),
        lost=kinds["lost"],
        duplicated=kinds["duplicated"],
        unexpected=kinds["unexpected"],
        corrupted=kinds["corrupted"],
        reported_failed=len(log.failed),
    )


def _violation_to_dict(violation: Violation) -> dict[str, Any]:
    return {
        "kind": violation.kind,
        "task_id": violation.task_id,
        "index": None if violation.index is None else list(violation.index),
        "seqs": list(violation.seqs),
        "detail": violation.detail,
    }


def _violation_from_dict(data: Mapping[str, Any]) -> Violation:
    index = data.get("index")
    return Violation(
        kind=data["kind"],
        task_id=data.get("task_id"),
        index=None if index is None else tuple(index),
        seqs=tuple(data["seqs"]),
        detail=data["detail"],
    )
