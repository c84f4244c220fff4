"""Small readers of a run's history, and a scheduler that stops writing to its client,
shared by the harness's tests."""

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


class DeafComm:
    """Takes the scheduler's messages to a client and sends none. (Taking the client's
    comm away instead broke the client's stream at its next heartbeat, which the
    scheduler answers on that comm; the client then reconnected and heard again.)"""

    def send(self, *msgs: object) -> None:
        pass

    async def close(self) -> None:
        pass


def stop_writing_to_the_client(client_id: str, dask_scheduler=None) -> None:
    dask_scheduler.chaos_test_comm = dask_scheduler.client_comms[client_id]
    dask_scheduler.client_comms[client_id] = DeafComm()


def write_to_the_client_again(client_id: str, dask_scheduler=None) -> None:
    dask_scheduler.client_comms[client_id] = dask_scheduler.chaos_test_comm
