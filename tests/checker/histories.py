"""Hand-written histories: a small builder that writes the events of docs/history.md.

Each call appends one event (or an invoke and its outcome) and returns its `seq`, so a
test can assert that a verdict cites exactly the events it should.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

TaskId = Any
WORKERS = ("tcp://10.0.0.1:40001", "tcp://10.0.0.2:40002", "tcp://10.0.0.3:40003",
           "tcp://10.0.0.4:40004")


def digest(task_id: TaskId, index: Iterable[int]) -> str:
    return hashlib.sha256(f"{task_id!r}|{list(index)}".encode()).hexdigest()


def oracle_for(outputs: Iterable[tuple[TaskId, tuple[int, ...]]]) -> dict[Any, str]:
    return {(task_id, tuple(index)): digest(task_id, index) for task_id, index in outputs}


def one_output_each(*task_ids: TaskId) -> dict[Any, str]:
    """The oracle of one-step tasks with one output each: (task_id, (0,))."""
    return oracle_for((task_id, (0,)) for task_id in task_ids)


class HistoryBuilder:
    def __init__(self, target: str = "resilience", *, workers: int = 2, run_id: str = "run-1",
                 seed: int = 7, **config: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.clock = 1_000.0
        self.workers = WORKERS[:workers]
        self._executions = 0
        self.emit("run-start", run_id=run_id, target=target, config=config,
                  schedule={"faults": []}, workload={"kind": "hand-written"}, seed=seed,
                  versions={"history": 1, "dask": "2026.8.0"}, git_commit="abc1234",
                  workers=[{"address": w, "pid": 100 + i} for i, w in enumerate(self.workers)])

    def emit(self, event_type: str, **fields: Any) -> int:
        seq = len(self.events)
        self.events.append({"seq": seq, "time": self.clock, "type": event_type, **fields})
        self.clock += 0.01
        return seq

    def wait(self, seconds: float) -> None:
        self.clock += seconds

    def submit(self, task_id: TaskId, index: tuple[int, ...] = (), step: int = 0,
               attempt: int = 1, reason: str = "new") -> int:
        return self.emit("submit", task_id=task_id, index=list(index), step=step,
                         attempt=attempt, key=_key(task_id, index, step, attempt), reason=reason)

    def invoke(self, task_id: TaskId, index: tuple[int, ...] = (), step: int = 0,
               worker: int = 0, attempt: int = 1, pid: int | None = None) -> str:
        """`pid`: the worker's process, by default its first (100 + worker)."""
        self._executions += 1
        execution = f"x{self._executions}"
        self.emit("invoke", task_id=task_id, index=list(index), step=step,
                  key=_key(task_id, index, step, attempt), worker=self.workers[worker],
                  pid=100 + worker if pid is None else pid, execution=execution)
        return execution

    def outcome(self, execution: str, kind: str = "ok", seconds: float = 0.05) -> int:
        self.wait(seconds)
        if kind == "ok":
            return self.emit("ok", execution=execution, n_outputs=1, duration=seconds,
                             cpu=seconds)
        if kind == "fail":
            return self.emit("fail", execution=execution, error="ValueError: poison",
                             cpu=seconds)
        return self.emit("info", execution=execution, reason="worker died")

    def execute(self, task_id: TaskId, index: tuple[int, ...] = (), step: int = 0,
                worker: int = 0, outcome: str = "ok", attempt: int = 1) -> str:
        execution = self.invoke(task_id, index, step, worker, attempt)
        self.outcome(execution, outcome)
        return execution

    def fault(self, worker: int = 0, kind: str = "sigkill", noticed: float | None = 0.1,
              fault_id: str | None = None, pid: int | None = None) -> int:
        fault_id = f"f{len(self.events)}" if fault_id is None else fault_id
        return self.emit("fault", fault_id=fault_id, kind=kind,
                         trigger={"kind": "time"}, worker=self.workers[worker],
                         pid=100 + worker if pid is None else pid,
                         fired_at=self.clock, landed_at=self.clock + 0.001,
                         noticed_at=None if noticed is None else self.clock + noticed)

    def step_error(self, task_id: TaskId, index: tuple[int, ...] = (), step: int = 0,
                   attempt: int = 1, cause: str = "lost-input") -> int:
        return self.emit("step-error", task_id=task_id, index=list(index), step=step,
                         attempt=attempt, key=_key(task_id, index, step, attempt), cause=cause,
                         error="CancelledError")

    def suppressed(self, task_id: TaskId, index: tuple[int, ...] = (), step: int = 0,
                   attempt: int = 1) -> int:
        return self.emit("duplicate-suppressed", task_id=task_id, index=list(index), step=step,
                         attempt=attempt, key=_key(task_id, index, step, attempt))

    def deliver(self, task_id: TaskId, index: tuple[int, ...] = (0,), *,
                value_digest: str | None = None, attempts: int = 1) -> int:
        return self.emit("deliver", task_id=task_id, index=list(index),
                         digest=value_digest or digest(task_id, index), attempts=attempts)

    def task_failed(self, task_id: TaskId, reason: str = "input lost; set task_registry") -> int:
        return self.emit("task-failed", task_id=task_id, reason=reason)

    def end(self, status: str = "completed", error: str | None = None) -> int:
        return self.emit("run-end", status=status, makespan=self.clock - 1_000.0, error=error)

    def clean_task(self, task_id: TaskId, worker: int = 0) -> int:
        """A one-step task that runs once and delivers output (0,); returns the deliver seq."""
        self.submit(task_id)
        self.execute(task_id, worker=worker)
        return self.deliver(task_id)

    def recovered_task(self, task_id: TaskId, kind: str = "sigkill",
                       outage: float = 0.3) -> int:
        """A one-step task whose attempt a fault of `kind` cut short, resubmitted and
        delivered `outage` seconds later; returns the deliver seq."""
        self.submit(task_id)
        execution = self.invoke(task_id, worker=0)
        self.fault(worker=0, kind=kind)
        self.outcome(execution, "info")
        self.wait(outage)
        self.submit(task_id, attempt=2, reason="resubmitted")
        self.execute(task_id, worker=1, attempt=2)
        return self.deliver(task_id)


def _key(task_id: TaskId, index: tuple[int, ...], step: int, attempt: int) -> str:
    return f"step-{task_id}-{'.'.join(map(str, index))}-{step}-a{attempt}"
