"""Validated settings: a bad value raises `ConfigError` naming the value, the rule, the fix."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from resilience.errors import ConfigError
from resilience.signing import check_key

RegistryKind = Literal["memory", "disk"] | None
REGISTRY_FILE = "registry.sqlite"  # a durable registry's name in its output folder
ReplicaGuard = Literal["policy", "require-amm-off"]

REGISTRY_KINDS = (None, "memory", "disk")
REPLICA_GUARDS = ("policy", "require-amm-off")


@dataclass(frozen=True)
class ResilienceConfig:
    """The settings of one run.

    max_task_replicas: the `n` of `Client.replicate` for every step input: the total
        number of workers holding a copy. 0 means "do not replicate"; None means
        "every worker". An input survives the loss of n - 1 of its holders.
    task_registry: None, "memory" or "disk". With a registry, a step whose input or
        worker was lost is resubmitted from the registry's copy of its input.
    registry_path: the SQLite file of the "disk" registry. Rerunning with the same path
        after the client died resumes the run. Default: `<output_path>/registry.sqlite`
        with an output_path, else a scratch file deleted after the run.
    output_path: a folder where every output is written exactly once, to a file named
        after its (task_id, index), with one `scores.json` line each. Needs
        task_registry="disk": the ledger of written outputs lives in the registry.
    registry_key: the MAC key (bytes, >= 16) that signs the registry's records. None:
        a random key kept in `<registry_path>.key`, readable by its owner only.
    start_afresh: when registry_path holds another run (other tasks or protocols),
        move it and the output folder aside (renamed, never deleted) and start anew,
        instead of refusing.
    max_attempts: attempts per task step, the first included. Past them the task is
        reported failed, so a poison task cannot stall the run.
    scatter: scatter step inputs to the workers (PyRosettaCluster's way); False passes
        them inline in the task graph, where the scheduler keeps them.
    replica_guard: how replicas are kept alive against the Active Memory Manager.
        "policy" installs a scheduler-side AMM policy that keeps n copies of this run's
        inputs (and re-creates them after a holder dies) while the AMM keeps reducing
        everything else. "require-amm-off" refuses to run unless ReduceReplicas is off.
    step_timeout: seconds one attempt of a step may run. Past it, a second attempt is
        started (with a registry; the first to finish wins) or the task fails.
        None: unbounded, as PyRosetta steps may run for hours.
    worker_wait_timeout: seconds the run waits for a worker when the cluster has none,
        before reporting the unfinished tasks failed.
    scheduler_timeout: seconds the run waits for a lost scheduler to come back (the
        client reconnects to the same address by itself, within its own `timeout`)
        before it stops with `SchedulerLost`. A durable run then resumes when run again.
    max_in_flight: step attempts submitted but not yet resolved. Bounds client memory.
    on_event: called with each `resilience.events` event, in order.
    """

    max_task_replicas: int | None = 0
    task_registry: RegistryKind = None
    registry_path: str | None = None
    output_path: str | None = None
    registry_key: bytes | None = None
    start_afresh: bool = False
    max_attempts: int = 5
    scatter: bool = True
    replica_guard: ReplicaGuard = "policy"
    step_timeout: float | None = None
    worker_wait_timeout: float = 300.0
    scheduler_timeout: float = 60.0
    max_in_flight: int = 1024
    on_event: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        _check_replicas(self.max_task_replicas)
        if self.task_registry not in REGISTRY_KINDS:
            raise ConfigError(
                f"task_registry={self.task_registry!r} is not one of None, 'memory', 'disk'; "
                "use 'disk' for production runs, 'memory' for small ones."
            )
        if self.registry_path is not None:
            if self.task_registry != "disk":
                raise ConfigError(
                    f"registry_path={self.registry_path!r} was given with "
                    f"task_registry={self.task_registry!r}; a path is only used by "
                    "task_registry='disk'. Set task_registry='disk' or drop registry_path."
                )
            object.__setattr__(self, "registry_path", os.fspath(self.registry_path))
        self._check_durability()
        _check_int("max_attempts", self.max_attempts, minimum=1,
                   fix="1 means no resubmission; 3 to 5 suits preemptible clusters.")
        if not isinstance(self.scatter, bool):
            raise ConfigError(f"scatter={self.scatter!r} must be True or False.")
        if not self.scatter and self.max_task_replicas != 0:
            raise ConfigError(
                f"max_task_replicas={self.max_task_replicas!r} needs scatter=True: inline "
                "inputs live in the scheduler's task graph, where Dask reschedules them "
                "itself, and cannot be replicated. Set scatter=True or max_task_replicas=0."
            )
        if self.replica_guard not in REPLICA_GUARDS:
            raise ConfigError(
                f"replica_guard={self.replica_guard!r} is not one of {REPLICA_GUARDS}."
            )
        if self.step_timeout is not None:
            _check_positive("step_timeout", self.step_timeout)
        _check_positive("worker_wait_timeout", self.worker_wait_timeout)
        _check_positive("scheduler_timeout", self.scheduler_timeout)
        _check_int("max_in_flight", self.max_in_flight, minimum=1,
                   fix="a few times the cluster's thread count keeps every worker busy.")
        if self.on_event is not None and not callable(self.on_event):
            raise ConfigError(f"on_event={self.on_event!r} must be callable or None.")

    def _check_durability(self) -> None:
        for name in ("output_path", "registry_key"):
            if getattr(self, name) is not None and self.task_registry != "disk":
                raise ConfigError(
                    f"{name} was given with task_registry={self.task_registry!r}; it needs "
                    "task_registry='disk', whose database keeps the run's ledger."
                )
        if self.output_path is not None:
            object.__setattr__(self, "output_path", os.fspath(self.output_path))
            if os.path.exists(self.output_path) and not os.path.isdir(self.output_path):
                raise ConfigError(f"output_path={self.output_path!r} is a file, not a folder.")
        if self.registry_key is not None:
            check_key(self.registry_key)
        if not isinstance(self.start_afresh, bool):
            raise ConfigError(f"start_afresh={self.start_afresh!r} must be True or False.")
        if self.start_afresh and self.registry_path is None and self.output_path is None:
            raise ConfigError(
                "start_afresh=True needs a registry_path or output_path to start afresh in; "
                "a run without either always starts afresh."
            )

    @property
    def durable_registry_path(self) -> str | None:
        """Where the run's registry lives, if the user can resume from it."""
        if self.registry_path is not None:
            return self.registry_path
        if self.output_path is not None:
            return os.path.join(self.output_path, REGISTRY_FILE)
        return None

    @property
    def replicates(self) -> bool:
        """Whether step inputs are replicated."""
        return self.max_task_replicas != 0


def resolve_retries(retries: int | Sequence[int] | None, n_protocols: int) -> list[int]:
    """One Dask `retries=` value per protocol, from an int, a per-protocol list, or None."""
    if retries is None:
        return [0] * n_protocols
    if isinstance(retries, int) and not isinstance(retries, bool):
        _check_int("retries", retries, minimum=0, fix="it counts re-runs after an exception.")
        return [retries] * n_protocols
    if isinstance(retries, (list, tuple)):
        if len(retries) != n_protocols:
            raise ConfigError(
                f"retries has {len(retries)} values for {n_protocols} protocols; "
                "give one int per protocol, or a single int for all."
            )
        for value in retries:
            _check_int("each retries value", value, minimum=0,
                       fix="it counts re-runs after an exception.")
        return list(retries)
    raise ConfigError(
        f"retries={retries!r} must be None, an int >= 0, or a list with one int per protocol."
    )


def _check_replicas(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(
            f"max_task_replicas={value!r} must be an int >= 0 (the n of Client.replicate: "
            "total copies of each input) or None (every worker). Use 2 to survive the "
            "loss of one holder."
        )


def _check_int(name: str, value: object, *, minimum: int, fix: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be an int >= {minimum}; {fix}")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name}={value!r} must be a number of seconds > 0.")
