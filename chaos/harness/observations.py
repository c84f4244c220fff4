"""What the harness has seen of a run so far: executions, start order, departures.

Filled on the client's event loop from the probes' and the scheduler's reports, read
by the coordinator's thread when a trigger fires; hence one lock around everything.

A worker that a nanny restarted may come back at its old address (a fixed port), as a
new process: an execution is on a worker that left when the address's removal arrived
after the execution's invoke did (both come through the scheduler, in order).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

from chaos.spec import TaskId


@dataclass
class Execution:
    """One execution of one task step, as its `invoke` report described it."""

    task_id: TaskId | None
    index: list[int]
    step: int
    key: str | None
    worker: str
    pid: int | None
    outcome: str | None = None
    arrived: int = 0  # the order its invoke arrived in, among reports and removals


class RunObservations:
    """Thread-safe record of the run's executions and of the workers that left."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executions: dict[str, Execution] = {}
        self._start_order: list[TaskId | None] = []
        self._arrivals = itertools.count(1)
        self._removed: dict[str, list[tuple[float, int]]] = {}  # address -> (when, arrived)
        self._claimed: set[int] = set()  # removals that were some fault's notice
        self._flushes: set[str] = set()

    # ------------------------------------------------------------------ recording

    def record(self, kind: str | None, message: dict[str, Any]) -> None:
        """A probe report (invoke, ok, fail...) from a worker."""
        with self._lock:
            if kind == "invoke":
                self._executions[message["execution"]] = Execution(
                    message.get("task_id"), message.get("index", []), message.get("step", 0),
                    message.get("key"), message.get("worker", ""), message.get("pid"),
                    arrived=next(self._arrivals),
                )
                if message.get("task_id") not in self._start_order:
                    self._start_order.append(message.get("task_id"))
            elif kind in ("ok", "fail"):
                execution = self._executions.get(message.get("execution", ""))
                if execution is not None and execution.outcome is None:
                    execution.outcome = kind

    def record_removal(self, worker: str, when: float) -> None:
        with self._lock:
            self._removed.setdefault(worker, []).append((when, next(self._arrivals)))

    def record_flush(self, token: str) -> None:
        with self._lock:
            self._flushes.add(token)

    # ------------------------------------------------------------------ queries

    def flushed(self, token: str) -> bool:
        with self._lock:
            return token in self._flushes

    def claim_removal(self, worker: str, since: float) -> float | None:
        """When the scheduler first removed `worker` at or after `since`, if it did, in a
        removal no earlier claim took: each departure is the notice of one fault (two
        kills in a second may hit one address, the second on the restarted process)."""
        with self._lock:
            for when, arrived in self._removed.get(worker, ()):
                if when >= since and arrived not in self._claimed:
                    self._claimed.add(arrived)
                    return when
        return None

    def pid_of(self, execution: str | None) -> int | None:
        with self._lock:
            found = self._executions.get(execution or "")
        return found.pid if found else None

    def nth_started(self, nth: int) -> TaskId | None:
        """The task that started n-th (1 = first), or None while fewer have started."""
        with self._lock:
            return self._start_order[nth - 1] if len(self._start_order) >= nth else None

    def key_of(self, execution: str | None) -> str | None:
        with self._lock:
            found = self._executions.get(execution or "")
        return found.key if found else None

    def running(self, task_id: TaskId) -> Execution | None:
        """The latest execution of `task_id` with no outcome, on a worker still there."""
        with self._lock:
            candidates = [e for e in self._executions.values()
                          if e.task_id == task_id and e.outcome is None and not self._gone(e)]
        return candidates[-1] if candidates else None

    def busy_workers(self) -> list[str]:
        """Workers with an execution under way, sorted."""
        with self._lock:
            return sorted({e.worker for e in self._executions.values()
                           if e.outcome is None and not self._gone(e)})

    def _gone(self, execution: Execution) -> bool:
        """Its worker process left (called under the lock)."""
        return any(arrived > execution.arrived
                   for _, arrived in self._removed.get(execution.worker, ()))

    def unfinished(self) -> dict[str, Execution]:
        """Executions with no ok or fail: the run ends them with `info`."""
        with self._lock:
            return {k: e for k, e in self._executions.items() if e.outcome is None}
