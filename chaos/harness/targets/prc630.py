"""The `prc630` target: a MODEL of the behaviour PyRosettaCluster PR #630 DESCRIBES.

This is not PyRosettaCluster, and not its code: it is a clean re-implementation of what
the PR's description says, so that the library can be compared with that design on the
very same fault schedules where PyRosetta cannot be installed. It is informational
(never gated); the `pyrosettacluster` target runs the real thing where PyRosetta is.

What the PR describes, and what this model does:

- each task's input is scattered on its own (one `client.scatter` per task), and, with
  `max_task_replicas` = n > 0, replicated with one `client.replicate(future, n)` per task;
- replication needs the Active Memory Manager off (it would undo the copies): the model
  turns the AMM off for its run and back on after;
- Dask's own retries (`allowed-failures`) handle a worker dying mid-task;
- with a task registry ("memory" or "disk"), a step whose future raises
  `concurrent.futures.CancelledError` (input lost) is resubmitted from the registry's
  copy of its input, without a bound;
- `KilledWorker` is not resubmitted: the step is dropped (and nothing reports it);
- there is no deduplication: every result that arrives is delivered;
- a scatter that races a worker's death raises (`CommClosedError`) and ends the run, as
  a bare `client.scatter` does.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any, ClassVar

from distributed import Future, as_completed

from chaos.errors import ScheduleError
from chaos.harness.targets.base import (
    Target,
    TargetConfig,
    TargetRun,
    cancel_client_futures,
    classify,
    outputs_of,
)

UNBOUNDED_ATTEMPTS = 10**9  # the PR's registry resubmits without a bound

Step = tuple[dict[str, Any], tuple[int, ...], int, int]  # task, index, step, attempt


class Prc630Target(Target):
    """A model of PR #630's described behaviour (not PyRosettaCluster)."""

    name: ClassVar[str] = "prc630"

    def __init__(self) -> None:
        self._aborted = threading.Event()
        self._client: Any = None
        self._pending: dict[Future[Any], Step] = {}
        self._lock = threading.Lock()

    def check(self, config: TargetConfig) -> None:
        super().check(config)
        if not config.scatter:
            raise ScheduleError(
                "scatter=False does not apply to prc630: the PR's design scatters each task's "
                "input. Drop --inline (or scatter=off) for this target."
            )

    def recorded_config(self, config: TargetConfig, allowed_failures: int) -> dict[str, Any]:
        recorded = super().recorded_config(config, allowed_failures)
        recorded["max_attempts"] = UNBOUNDED_ATTEMPTS if config.task_registry else 1
        recorded["killed_worker"] = "dropped"
        recorded["model_of"] = "PyRosettaCluster PR #630's description (not its code)"
        return recorded

    def run(self, run: TargetRun) -> None:
        client = self._client = run.client
        registry = _Registry(run.config.task_registry, run.scratch)
        amm_was_running = _amm_running(client)
        if run.config.max_task_replicas != 0 and amm_was_running:
            client.amm.stop()  # the PR requires the AMM off for replicas
        completed = as_completed(with_results=False)
        try:
            start = run.workload.initial_input()
            for task in run.workload.tasks():
                self._submit(run, completed, registry, (task, (), 0, 1), start)
            for future in completed:
                if self._aborted.is_set():
                    break
                self._collect(run, completed, registry, future)
        finally:
            with self._lock:
                pending, self._pending = list(self._pending), {}
            completed.clear()
            for future in pending:
                future.release()
            if run.config.max_task_replicas != 0 and amm_was_running:
                with contextlib.suppress(Exception):
                    client.amm.start()
            registry.close()

    def _submit(self, run: TargetRun, completed: as_completed, registry: _Registry,
                step: Step, payload: Any) -> None:
        client, config = run.client, run.config
        task, index, number, attempt = step
        registry.put(task["task_id"], index, number, payload)
        scattered = run.scatter(task["task_id"], index, number, payload)  # one per task
        if config.max_task_replicas != 0:
            with contextlib.suppress(Exception):  # as the PR: best effort, one call per task
                client.replicate([scattered], n=config.max_task_replicas)
        future = client.submit(run.protocols[number], scattered, pure=False,
                               retries=config.retries,
                               priority=run.priority(task["task_id"], index, number), **task)
        with self._lock:
            self._pending[future] = step
        run.history.emit("submit", task_id=task["task_id"], index=list(index), step=number,
                         attempt=attempt, key=str(future.key),
                         reason="new" if attempt == 1 else "lost-input")
        completed.add(future)

    def _collect(self, run: TargetRun, completed: as_completed, registry: _Registry,
                 future: Future[Any]) -> None:
        with self._lock:
            step = self._pending.pop(future, None)
        if step is None:
            return
        task, index, number, attempt = step
        task_id = task["task_id"]
        run.fetching(task_id, index, number)
        try:
            result = future.result()
        except Exception as error:
            cause = classify(error)
            run.history.emit("step-error", task_id=task_id, index=list(index), step=number,
                             attempt=attempt, key=str(future.key), cause=cause,
                             error=f"{type(error).__name__}: {error}"[:500])
            if isinstance(error, CancelledError) and registry.enabled:
                payload = registry.get(task_id, index, number)
                self._submit(run, completed, registry, (task, index, number, attempt + 1),
                             payload)
            return  # KilledWorker, a protocol error, or no registry: dropped
        finally:
            future.release()
        outputs = outputs_of(result)
        run.history.emit("step-completed", task_id=task_id, index=list(index), step=number,
                         attempt=attempt, key=str(future.key), n_outputs=len(outputs))
        registry.drop(task_id, index, number)
        for position, payload in enumerate(outputs):
            lineage = (*index, position)
            if number == len(run.protocols) - 1:
                run.deliver(task_id, lineage, payload, attempts=attempt)  # no deduplication
            else:
                self._submit(run, completed, registry, (task, lineage, number + 1, 1), payload)

    def abort(self) -> None:
        self._aborted.set()
        if self._client is not None:
            cancel_client_futures(self._client)


class _Registry:
    """The PR's client-side task registry: inputs in memory, or one file each on disk."""

    def __init__(self, kind: str | None, scratch: Path) -> None:
        self.enabled = kind is not None
        self._memory: dict[tuple[Any, ...], Any] | None = {} if kind == "memory" else None
        self._folder = scratch / "prc630-registry" if kind == "disk" else None
        if self._folder is not None:
            self._folder.mkdir(parents=True, exist_ok=True)

    def _file(self, key: tuple[Any, ...]) -> Path:
        assert self._folder is not None
        return self._folder / (pickle.dumps(key).hex()[:200] + ".pkl")

    def put(self, task_id: Any, index: tuple[int, ...], step: int, payload: Any) -> None:
        key = (task_id, index, step)
        if self._memory is not None:
            self._memory[key] = payload
        elif self._folder is not None:
            self._file(key).write_bytes(pickle.dumps(payload))

    def get(self, task_id: Any, index: tuple[int, ...], step: int) -> Any:
        key = (task_id, index, step)
        if self._memory is not None:
            return self._memory[key]
        return pickle.loads(self._file(key).read_bytes())

    def drop(self, task_id: Any, index: tuple[int, ...], step: int) -> None:
        key = (task_id, index, step)
        if self._memory is not None:
            self._memory.pop(key, None)
        elif self._folder is not None:
            self._file(key).unlink(missing_ok=True)

    def close(self) -> None:
        self._memory = None


def _amm_running(client: Any) -> bool:
    try:
        return bool(client.amm.running())
    except Exception:
        return False
