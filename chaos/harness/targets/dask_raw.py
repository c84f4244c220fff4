"""The `dask-raw` baseline: what a user writes without any resilience, and what it loses.

Each task's input is scattered with `client.scatter`, each step submitted with
`client.submit`, results taken with `as_completed`; the next step's inputs are
scattered again from the client, as PyRosettaCluster does. No replicas, no registry,
no resubmission: an exception is caught per future and the loop moves on, as a naive
loop would. It never says a task failed, so a lost input is a silent loss, and the
history shows it: a `step-error` with cause `lost-input` and no `deliver` after it.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from distributed import Future, as_completed

from chaos.errors import ScheduleError
from chaos.harness.targets.base import Target, TargetConfig, TargetRun, classify, outputs_of
from chaos.spec import TaskId


class DaskRawTarget(Target):
    name: ClassVar[str] = "dask-raw"

    def __init__(self) -> None:
        self._aborted = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[Future[Any], tuple[dict[str, Any], tuple[int, ...], int]] = {}
        self._completed: as_completed | None = None

    def recorded_config(self, config: TargetConfig, allowed_failures: int) -> dict[str, Any]:
        return {"max_task_replicas": 0, "task_registry": None, "scatter": config.scatter,
                "max_attempts": 1, "retries": config.retries, "allowed_failures": allowed_failures}

    def check(self, config: TargetConfig) -> None:
        super().check(config)
        if config.max_task_replicas != 0 or config.task_registry is not None:
            raise ScheduleError(
                f"dask-raw takes no replicas or registry (got max_task_replicas="
                f"{config.max_task_replicas!r}, task_registry={config.task_registry!r}); it is "
                "the baseline without resilience. Use --target resilience for those settings."
            )

    def run(self, run: TargetRun) -> None:
        config = run.config
        client = run.client
        self._completed = as_completed(with_results=False)
        tasks = run.workload.tasks()
        start = run.workload.initial_input()
        inputs: list[Any] = (client.scatter([start] * len(tasks), hash=False)
                             if config.scatter else [start] * len(tasks))
        try:
            for task, payload in zip(tasks, inputs, strict=True):
                self._submit(run, task, (), 0, payload)
            self._collect(run)
        finally:
            self._release_all(inputs)

    def _collect(self, run: TargetRun) -> None:
        config = run.config
        last = len(run.protocols) - 1
        assert self._completed is not None
        for future in self._completed:
            if self._aborted.is_set():
                break
            with self._lock:
                task, index, step = self._pending.pop(future)
            run.fetching(task["task_id"], index, step)
            try:
                result = future.result()
            except Exception as error:  # the naive loop: note it, move on
                run.history.emit("step-error", task_id=task["task_id"], index=list(index),
                                 step=step, attempt=1, key=str(future.key),
                                 cause=classify(error), error=f"{type(error).__name__}: {error}")
                continue
            finally:
                future.release()
            outputs = outputs_of(result)
            run.history.emit("step-completed", task_id=task["task_id"], index=list(index),
                             step=step, attempt=1, key=str(future.key), n_outputs=len(outputs))
            for position, payload in enumerate(outputs):
                lineage = (*index, position)
                if step == last:
                    run.deliver(task["task_id"], lineage, payload, attempts=1)
                    continue
                if config.scatter:
                    payload = run.scatter(task["task_id"], lineage, step + 1, payload)
                self._submit(run, task, lineage, step + 1, payload)

    def _submit(self, run: TargetRun, task: dict[str, Any], index: tuple[int, ...], step: int,
                payload: Any) -> None:
        task_id: TaskId = task["task_id"]
        future = run.client.submit(run.protocols[step], payload, pure=False,
                                   retries=run.config.retries,
                                   priority=run.priority(task_id, index, step), **task)
        with self._lock:
            self._pending[future] = (task, index, step)
        run.history.emit("submit", task_id=task_id, index=list(index), step=step, attempt=1,
                         key=str(future.key), reason="new")
        assert self._completed is not None
        self._completed.add(future)

    def abort(self) -> None:
        self._aborted.set()
        with self._lock:
            futures = list(self._pending)
        for future in futures:
            future.cancel()

    def _release_all(self, inputs: list[Any]) -> None:
        # A future that never resolves (its worker and input both lost) keeps a Dask
        # callback alive, and with it everything it references: release explicitly, so
        # the next run starts on an empty cluster.
        with self._lock:
            pending, self._pending = list(self._pending), {}
        if self._completed is not None:
            self._completed.clear()
        for future in [*pending, *(f for f in inputs if isinstance(f, Future))]:
            future.release()
