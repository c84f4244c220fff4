"""The checker's verdict on one run: the evidence of every violation, JSON round-trippable.

Jepsen-style evidence, never a bare boolean: each violation names the task, the output
index and the `seq` numbers of the events behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chaos.judge.landing import FaultMiss
from chaos.judge.model import ExpectedOutcome
from chaos.spec import TaskId

ViolationKind = Literal["lost", "duplicated", "unexpected", "corrupted", "reported-failed", "hung"]
VIOLATION_KINDS: tuple[ViolationKind, ...] = (
    "lost", "duplicated", "unexpected", "corrupted", "reported-failed", "hung",
)
# "inconclusive": no violation, but not every scheduled fault landed (chaos.judge.landing),
# so the run proves less than it claims: never "valid".
VerdictOutcome = Literal["valid", "invalid", "hung", "inconclusive"]
VERDICT_OUTCOMES: tuple[VerdictOutcome, ...] = ("valid", "invalid", "hung", "inconclusive")


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
    fault_misses: tuple[FaultMiss, ...] = ()

    @property
    def valid(self) -> bool:
        return self.outcome == "valid"

    @property
    def failing(self) -> bool:
        """A violation was found, or the run hung (inconclusive runs are not failing)."""
        return self.outcome in ("invalid", "hung")

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
        missed = [m for m in self.fault_misses if m.inconclusive and m.cause != "unexplained"]
        if missed:
            found += "; faults that did not land: " + ", ".join(
                f"{m.fault_id or 'run'} ({m.cause})" for m in missed)
        if unexplained := sum(m.cause == "unexplained" for m in self.fault_misses):
            found += f"; worker departures no fault explains: {unexplained}"
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
            "violations": [violation_to_dict(v) for v in self.violations],
            "reported_failures": [vars(f).copy() for f in self.reported_failures],
            "repeated_executions": [
                {**vars(r), "index": list(r.index), "seqs": list(r.seqs)}
                for r in self.repeated_executions
            ],
            "deliveries": vars(self.deliveries).copy(),
            "executions": vars(self.executions).copy(),
            "last_seq": self.last_seq,
            "fault_misses": [miss.to_dict() for miss in self.fault_misses],
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
            violations=tuple(violation_from_dict(v) for v in data["violations"]),
            reported_failures=tuple(ReportedFailure(**f) for f in data["reported_failures"]),
            repeated_executions=tuple(
                RepeatedExecution(**{**r, "index": tuple(r["index"]), "seqs": tuple(r["seqs"])})
                for r in data["repeated_executions"]
            ),
            deliveries=DeliveryCounts(**data["deliveries"]),
            executions=ExecutionCounts(**data["executions"]),
            last_seq=data["last_seq"],
            fault_misses=tuple(FaultMiss(**m) for m in data.get("fault_misses", ())),
        )


def violation_to_dict(violation: Violation) -> dict[str, Any]:
    return {
        "kind": violation.kind,
        "task_id": violation.task_id,
        "index": None if violation.index is None else list(violation.index),
        "seqs": list(violation.seqs),
        "detail": violation.detail,
    }


def violation_from_dict(data: Mapping[str, Any]) -> Violation:
    index = data.get("index")
    return Violation(
        kind=data["kind"],
        task_id=data.get("task_id"),
        index=None if index is None else tuple(index),
        seqs=tuple(data["seqs"]),
        detail=data["detail"],
    )
