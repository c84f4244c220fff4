"""One run's history, validated and indexed once for the checks that read it many times."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.errors import HistoryError
from chaos.history import upgraded
from chaos.judge.verdict import ExecutionCounts, RepeatedExecution
from chaos.spec import OutputKey, TaskId


def validated(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    history = list(events)
    if not history or history[0].get("type") != "run-start":
        first = history[0].get("type") if history else "nothing"
        raise HistoryError(
            f"a history must open with a run-start event, but it opens with {first!r}; "
            "pass one run's complete history.jsonl (docs/history.md)."
        )
    history = upgraded(history)  # an older format reads as the current one
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


class RunLog:
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
    def read(cls, history: Sequence[Mapping[str, Any]]) -> RunLog:
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
