"""What a target is: an adapter that runs a workload on a cluster and reports to the history.

A target writes the client-side events (`submit`, `step-error`, `step-completed`,
`duplicate-suppressed`, `deliver`, `task-failed`; a naive loop also `scatter`); the
probes write the worker-side ones and the harness the rest. `run` returns when the
system under test finished (or raises what it raised); `abort` must make a running `run`
return soon, from another thread, when the runner declares the run hung.
"""

from __future__ import annotations

import abc
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from distributed import Client, Future, KilledWorker

from chaos.errors import ScheduleError
from chaos.harness.death_race import Step
from chaos.history import HistoryWriter
from chaos.spec import TaskId
from chaos.workload import Workload

REGISTRIES = (None, "memory", "disk")
# Seconds a replay's scatter waits for the worker its original's went to, when that
# worker is not running here (a replay that left its original), before going anywhere.
PLACED_SCATTER_WAIT = 0.5


@dataclass(frozen=True)
class TargetConfig:
    """The settings of the system under test, as recorded in `run-start.config`.

    The names are the resilience library's (and PyRosettaCluster's). `options` holds
    extra keyword arguments for the target's constructor, recorded too.
    """

    max_task_replicas: int | None = 0
    task_registry: str | None = None
    scatter: bool = True
    max_attempts: int = 5
    retries: int | None = None
    step_timeout: float | None = None
    # Seconds of notice the library's preemption-notice plugin is installed with for the
    # run (`resilience.install_notice_handler`), or None: not installed.
    notice: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        replicas = self.max_task_replicas
        if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
            raise ScheduleError(
                f"max_task_replicas={replicas!r}: use an int >= 0, or None for every worker."
            )
        if self.task_registry not in REGISTRIES:
            raise ScheduleError(
                f"task_registry={self.task_registry!r}: use None, \"memory\" or \"disk\"."
            )
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ScheduleError(f"max_attempts={self.max_attempts!r}: use an int >= 1.")
        if self.notice is not None and not (
                isinstance(self.notice, (int, float)) and self.notice > 0):
            raise ScheduleError(f"notice={self.notice!r}: use seconds > 0, or None.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_task_replicas": self.max_task_replicas,
            "task_registry": self.task_registry,
            "scatter": self.scatter,
            "max_attempts": self.max_attempts,
            "retries": self.retries,
            "step_timeout": self.step_timeout,
            "notice": self.notice,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetConfig:
        known = {"max_task_replicas", "task_registry", "scatter", "max_attempts", "retries",
                 "step_timeout", "notice", "options"}
        return cls(**{k: v for k, v in data.items() if k in known})


class LockstepHooks(Protocol):
    """What a naive loop asks of a lockstep replay (`chaos.harness.lockstep.Lockstep`)."""

    def where(self, step: Step) -> str | None:
        """The worker to scatter this step's input to, as the original did, or None."""

    def placed(self, step: Step) -> None:
        """This step's scatter returned."""

    def priority(self, step: Step) -> int:
        """The Dask priority to submit this step with, to start it in the original's order."""


@dataclass
class TargetRun:
    """Everything a target needs for one run."""

    client: Client
    workload: Workload
    protocols: list[Callable[..., Any]]
    config: TargetConfig
    history: HistoryWriter
    scratch: Path
    lockstep: LockstepHooks | None = None  # a lockstep replay's

    def deliver(self, task_id: TaskId, index: tuple[int, ...], value: Any, attempts: int) -> None:
        self.history.emit("deliver", task_id=task_id, index=list(index),
                          digest=self.workload.digest(value), attempts=attempts)

    def scatter(self, task_id: TaskId, index: tuple[int, ...], step: int, payload: Any
                ) -> Future[Any]:
        """Scatter a step's input from the client, as a naive loop does (unhashed), saying
        so first. A scatter can race a worker's death (and end a naive loop with
        CommClosedError); a lockstep replay reads from this event where its original's
        did, and puts the input where the original's went (`chaos.harness.placement`)."""
        key = f"{type(payload).__name__}-{uuid.uuid4().hex}"  # as hash=False names it
        self.history.emit("scatter", task_id=task_id, index=list(index), step=step, key=key)
        step_key = (task_id, tuple(index), step)
        worker = self.lockstep.where(step_key) if self.lockstep is not None else None
        try:
            scattered: dict[str, Future[Any]] = (
                self.client.scatter({key: payload}) if worker is None
                else self._scatter_to(key, payload, worker))
        finally:
            if self.lockstep is not None:
                self.lockstep.placed(step_key)
        return scattered[key]

    def _scatter_to(self, key: str, payload: Any, worker: str) -> dict[str, Future[Any]]:
        """Scatter to `worker`, waiting up to PLACED_SCATTER_WAIT for it to run. One the
        scheduler does not know yet may be a worker its nanny is restarting at the same
        address, which was back before this scatter in the original (nightly --seed
        7171's `s035`: 20 ms late here, t1's input went elsewhere and it was delivered)."""
        deadline = time.monotonic() + PLACED_SCATTER_WAIT
        while True:
            try:
                placed: dict[str, Future[Any]] = self.client.scatter(
                    {key: payload}, workers=[worker],
                    timeout=max(0.0, deadline - time.monotonic()))
                return placed
            except KeyError:  # not registered (yet)
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
            except TimeoutError:  # registered, not running
                break
        # The replay left its original (a scatter that meets a dead worker raises on, as
        # it did there).
        self.history.emit("lockstep-diverged", waiting=f"worker {worker} for a scatter",
                          missing=[], patience=PLACED_SCATTER_WAIT)
        anywhere: dict[str, Future[Any]] = self.client.scatter({key: payload})
        return anywhere

    def priority(self, task_id: TaskId, index: tuple[int, ...], step: int) -> int:
        """The Dask priority to submit a step with: 0 (Dask's own default), or in a lockstep
        replay the one that starts it in its original's order (chaos.harness.start_order)."""
        return 0 if self.lockstep is None else self.lockstep.priority((task_id, tuple(index), step))

    def fetching(self, task_id: TaskId, index: tuple[int, ...], step: int) -> None:
        """Say that the client is about to take a step's result from its worker. The
        fetch can race that worker's death; a lockstep replay holds it until the kill
        has been noticed where the result died with its worker in the original."""
        self.history.emit("fetch", task_id=task_id, index=list(index), step=step)


class Target(abc.ABC):
    """A system under test. Subclasses set `name` and implement `run` and `abort`."""

    name: ClassVar[str]

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this target cannot run here (a missing package), or None when it can."""
        return None

    def check(self, config: TargetConfig) -> None:
        """Raise ScheduleError if this target cannot run under `config` (before any run).
        Subclasses extend it (calling this one)."""
        if config.notice is not None:
            raise ScheduleError(
                f"notice={config.notice:g} does not apply to {self.name}: the preemption-"
                "notice plugin is the resilience library's. Use --target resilience for it."
            )

    def recorded_config(self, config: TargetConfig, allowed_failures: int) -> dict[str, Any]:
        """The configuration written in run-start: what the expected-outcome model reads."""
        return {**config.to_dict(), "allowed_failures": allowed_failures}

    @abc.abstractmethod
    def run(self, run: TargetRun) -> None: ...

    @abc.abstractmethod
    def abort(self) -> None: ...


def classify(error: BaseException) -> str:
    """The `step-error` cause of what `future.result()` raised, as the history names it."""
    from concurrent.futures import CancelledError

    if isinstance(error, CancelledError):
        return "lost-input"
    if isinstance(error, KilledWorker):
        return "killed-worker"
    return "protocol-error"


def outputs_of(result: Any) -> list[Any]:
    """A protocol's return value as a list of payloads (None is nothing)."""
    if result is None:
        return []
    if isinstance(result, list):
        return result
    return [result]


def scratch_dir(base: Path, run_id: str) -> Path:
    path = base / f"chaos-{run_id}-{os.getpid()}-{threading.get_ident()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cancel_client_futures(client: Client) -> None:
    """Cancel every future `client` holds: how an aborted run is made to return.

    A hung target waits on futures it cannot see through; cancelling them all turns
    each wait into a CancelledError, which the target's loop handles and ends on.
    """
    from distributed import Future

    keys = list(getattr(client, "futures", {}))
    if keys:
        futures: list[Future[Any]] = [Future(key, client) for key in keys]
        client.cancel(futures, force=True)
