"""Small readers of a run's history, shared by the harness's tests."""

from __future__ import annotations

from typing import Any

from chaos import RunRecord


def one_fault(record: RunRecord) -> dict[str, Any]:
    faults = record.events("fault")
    assert len(faults) == 1, f"expected one fault event, got {faults} " \
        f"(skipped: {record.events('fault-skipped')})"
    return faults[0]


def of_execution(record: RunRecord, execution: str) -> list[dict[str, Any]]:
    """Every event of one execution, in history order."""
    return [e for e in record.history if e.get("execution") == execution]


def invoke_of(record: RunRecord, execution: str) -> dict[str, Any]:
    [invoke] = [e for e in of_execution(record, execution) if e["type"] == "invoke"]
    return invoke


def outcomes_of(record: RunRecord, execution: str) -> list[str]:
    return [e["type"] for e in of_execution(record, execution)
            if e["type"] in ("ok", "fail", "info")]


def removals_of(record: RunRecord, worker: str) -> list[dict[str, Any]]:
    return [e for e in record.events("worker-removed") if e["worker"] == worker]


def delivered(record: RunRecord) -> set[tuple[Any, tuple[int, ...]]]:
    return {(e["task_id"], tuple(e["index"])) for e in record.events("deliver")}
