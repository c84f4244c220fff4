"""`ResilientCluster`: run protocol chains on any Dask cluster, and deliver every output once."""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cloudpickle
from distributed import Client

from resilience.config import REGISTRY_FILE, resolve_retries
from resilience.durable import DurableRun, open_durable_run
from resilience.environment import check_cluster
from resilience.errors import ConfigError, SchedulerLost, TaskFailures
from resilience.outputs import Output, RunSummary
from resilience.registry import MemoryRegistry, TaskRegistry
from resilience.runloop import RunLoop
from resilience.settings import UNSET, resolve_settings
from resilience.tasks import TaskSpec, task_specs

logger = logging.getLogger(__name__)

Protocol = Callable[..., Any]


class ResilientCluster:
    """Distribute tasks through a chain of protocols, surviving worker preemption.

    Each task dict is passed as ``**kwargs`` to every protocol; the first protocol gets
    `input`, each later one gets one output of the previous (a protocol may return one
    payload, a list or generator of them, or None). Every final output is delivered
    exactly once as an `Output`; tasks that cannot be delivered are reported in
    `TaskFailures` at the end, after everything else was delivered.

    See `ResilienceConfig` for the meaning of each setting. A setting not given here comes
    from Dask's configuration (`resilience.max-task-replicas`, ... in YAML, or
    `DASK_RESILIENCE__MAX_TASK_REPLICAS`...; defaults in the shipped `resilience.yaml`).
    """

    def __init__(
        self,
        client: Client,
        tasks: Iterable[Mapping[str, Any]],
        input: Any = None,
        max_task_replicas: int | None = UNSET,
        task_registry: str | None = UNSET,
        registry_path: str | None = UNSET,
        max_attempts: int = UNSET,
        scatter: bool = UNSET,
        *,
        output_path: str | None = UNSET,
        registry_key: bytes | None = None,
        start_afresh: bool = UNSET,
        replica_guard: str = UNSET,
        step_timeout: float | None = UNSET,
        worker_wait_timeout: float = UNSET,
        scheduler_timeout: float = UNSET,
        max_in_flight: int = UNSET,
        on_event: Callable[[Any], None] | None = None,
    ) -> None:
        if not isinstance(client, Client):
            raise ConfigError(
                f"client={client!r} is not a distributed.Client; connect one to your "
                "cluster first, e.g. Client(LocalCluster()) or Client('tcp://scheduler:8786')."
            )
        self.client = client
        # A setting not given comes from Dask's configuration (resilience.yaml's defaults).
        self.config = resolve_settings({
            "max_task_replicas": max_task_replicas, "task_registry": task_registry,
            "registry_path": registry_path, "output_path": output_path,
            "registry_key": registry_key, "start_afresh": start_afresh,
            "max_attempts": max_attempts, "scatter": scatter, "replica_guard": replica_guard,
            "step_timeout": step_timeout, "worker_wait_timeout": worker_wait_timeout,
            "scheduler_timeout": scheduler_timeout, "max_in_flight": max_in_flight,
            "on_event": on_event,
        })
        self.input = input
        # A list is checked whole now; a generator is checked as it is consumed.
        self._tasks: list[TaskSpec] | Iterator[TaskSpec]
        if isinstance(tasks, Sequence):
            self._tasks = list(task_specs(tasks))
        else:  # a durable run checks ids on disk, so memory stays bounded
            self._tasks = task_specs(tasks,
                                     check_unique=self.config.task_registry != "disk")
        self._consumed = False
        self._loop: RunLoop | None = None

    def generate(
        self, protocols: Sequence[Protocol] | Protocol, retries: int | Sequence[int] | None = None
    ) -> Iterator[Output]:
        """Yield each `Output` as soon as it is ready; raise `TaskFailures` at the end if any
        task could not be delivered. Closing the generator early cancels unfinished work.

        Bad protocols or retries raise `ConfigError` here, before anything runs.
        """
        chain = _protocol_chain(protocols)
        return self._run(chain, resolve_retries(retries, len(chain)), keep_outputs=False)

    def distribute(
        self, protocols: Sequence[Protocol] | Protocol, retries: int | Sequence[int] | None = None
    ) -> RunSummary:
        """Run to the end and return the `RunSummary` with every output.

        Raises `TaskFailures` (whose `.summary` holds what was delivered) if any task
        could not be delivered.
        """
        chain = _protocol_chain(protocols)
        for _ in self._run(chain, resolve_retries(retries, len(chain)), keep_outputs=True):
            pass
        return self.summary

    @property
    def summary(self) -> RunSummary:
        """Progress and counters of the latest run (live while it runs)."""
        return RunSummary() if self._loop is None else self._loop.summary()

    def _run(self, chain: list[Protocol], retry_counts: list[int],
             keep_outputs: bool) -> Iterator[Output]:
        check_cluster(self.client)
        tasks = self._take_tasks()
        path, scratch = self.config.durable_registry_path, None
        if self.config.task_registry == "disk" and path is None:
            scratch = Path(tempfile.mkdtemp(prefix="resilience-registry-"))
            path = str(scratch / REGISTRY_FILE)
        registry: TaskRegistry | None = None
        try:
            registry, durable = self._open_registry(chain, tasks, path)
            # A resumed run goes on with the input it started with (verified on disk).
            initial_input = (durable.registry.initial_input() if durable and durable.resumed
                             else self.input)
            self._loop = RunLoop(self.client, self.config, tasks, initial_input, chain,
                                 retry_counts, uuid.uuid4().hex[:8], registry, keep_outputs,
                                 durable)
            yield from self._loop.run()
        finally:
            if registry is not None:
                registry.close()
            if scratch is not None:  # nobody could resume from a path they never saw
                shutil.rmtree(scratch, ignore_errors=True)
        failed = self._loop.failed()
        if self._loop.internal_error is not None:
            raise TaskFailures(failed, self._loop.summary()) from self._loop.internal_error
        if self._loop.scheduler_lost is not None:
            raise SchedulerLost(failed, self._loop.summary(), self._loop.scheduler_lost)
        if failed:
            raise TaskFailures(failed, self._loop.summary())

    def _take_tasks(self) -> Iterator[TaskSpec]:
        if isinstance(self._tasks, list):
            return iter(self._tasks)
        if self._consumed:
            raise ConfigError(
                "tasks was a generator, and an earlier run consumed it; pass a list to run "
                "the same tasks again, or create a new ResilientCluster."
            )
        self._consumed = True
        return self._tasks

    def _open_registry(self, chain: list[Protocol], tasks: Iterator[TaskSpec],
                       path: str | None) -> tuple[TaskRegistry | None, DurableRun | None]:
        if self.config.task_registry == "memory":
            return MemoryRegistry(), None
        if self.config.task_registry is None or path is None:
            return None, None
        output = self.config.output_path
        durable = open_durable_run(Path(path), self.config.registry_key,
                                   None if output is None else Path(output), chain, tasks,
                                   self.config.start_afresh, initial_input=self.input)
        if durable.resumed:
            logger.info("resuming run %s from %s: %d output(s) delivered before",
                        durable.registry.run_id, path, durable.previously_delivered)
        return durable.registry, durable


def _protocol_chain(protocols: Sequence[Protocol] | Protocol) -> list[Protocol]:
    chain = [protocols] if callable(protocols) else list(protocols)
    if not chain:
        raise ConfigError("protocols is empty; pass one protocol or a list of them.")
    for step, protocol in enumerate(chain):
        if not callable(protocol):
            raise ConfigError(
                f"protocols[{step}]={protocol!r} is not callable; each protocol is a function "
                "protocol(payload, **task_kwargs)."
            )
        try:  # else every step would fail at submission, blamed on its input
            cloudpickle.dumps(protocol)
        except Exception as error:
            raise ConfigError(
                f"protocols[{step}]={protocol!r} cannot be pickled ({error}); Dask sends "
                "each protocol to the workers, so keep locks, open files and clients out "
                "of what it refers to (create them inside the protocol)."
            ) from error
    return chain
