"""The task registry: a client-side copy of what resubmits each unfinished task step.

One interface, two backends: `MemoryRegistry` (a dict) and `SQLiteRegistry`
(in `resilience.sqlite_registry`). A record is added before its step is first
submitted, and removed in the same transaction that adds its children (the next
step's records) or after its outputs were delivered. So at any instant every
unfinished step has exactly one record, and a resubmission restarts at the step
that failed, never at step 0.

A durable backend also keeps what a resumed run needs: the ledger of delivered
outputs, the failed steps, and how far the task list was consumed. Each is changed
in the same transaction as the step records it concerns.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from resilience.outputs import TaskId

RecordKey = tuple[TaskId, tuple[int, ...]]


class _InitialInput:
    """Stands for the run's `input`, which every task's step 0 shares: stored once, not per task."""

    _instance: _InitialInput | None = None

    def __new__(cls) -> _InitialInput:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "INITIAL_INPUT"

    def __reduce__(self) -> str:
        return "INITIAL_INPUT"


INITIAL_INPUT = _InitialInput()


@dataclass(frozen=True)
class StepRecord:
    """Everything needed to resubmit one task step.

    index: the step's input lineage (one output position per earlier step).
    payload: the step's input, or `INITIAL_INPUT` for step 0.
    attempts: attempts made so far, the one under way included: the first is written
        with the record, each later one as it is submitted. A resumed run does not
        charge the one it interrupted.
    options: Dask submit options, e.g. {"retries": 2}.
    lineage_attempts: attempts taken by each earlier step of this lineage.
    started_at: when the task was admitted (Unix time), carried down its lineage.
    """

    task_id: TaskId
    index: tuple[int, ...]
    step: int
    payload: Any
    kwargs: Mapping[str, Any]
    attempts: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    lineage_attempts: tuple[int, ...] = ()
    started_at: float = 0.0

    @property
    def key(self) -> RecordKey:
        return (self.task_id, self.index)


@dataclass(frozen=True)
class Delivery:
    """One output in the ledger of a durable registry.

    file: its name in the output folder, or None when no output_path was given.
    score: its scorefile line (JSON, no newline), or None likewise.
    """

    task_id: TaskId
    index: tuple[int, ...]
    attempts: int
    file: str | None = None
    score: str | None = None

    @property
    def key(self) -> RecordKey:
        return (self.task_id, self.index)


class TaskRegistry(abc.ABC):
    """Where unfinished task steps are kept until their outputs are delivered or handed on.

    Every method is atomic: a crash leaves either all of a call's changes or none.
    """

    #: Whether the registry outlives its process, so that a run can resume from it.
    durable = False

    @abc.abstractmethod
    def update(
        self,
        *,
        add: Sequence[StepRecord] = (),
        remove: Iterable[RecordKey] = (),
        delivered: Sequence[Delivery] = (),
        failed: Sequence[tuple[RecordKey, str]] = (),
        progress: Mapping[str, str] | None = None,
    ) -> None:
        """In one transaction, insert `add` and delete the records named by `remove`
        and by `failed` (steps that failed for good, with the reason).

        A durable registry also commits `delivered` to its ledger, keeps the `failed`
        reasons for a resumed run to report, and stores the run's `progress` values;
        a registry that dies with its process may ignore those.
        """

    @abc.abstractmethod
    def set_attempts(self, attempts: Iterable[tuple[RecordKey, int]]) -> None:
        """Set the attempt count of each record (a key with no record is skipped)."""

    @abc.abstractmethod
    def get_many(self, keys: Sequence[RecordKey]) -> list[StepRecord | None]:
        """The record for each key, None where there is none."""

    def get(self, key: RecordKey) -> StepRecord | None:
        """The record for `key`, or None."""
        return self.get_many([key])[0]

    @abc.abstractmethod
    def records(self) -> Iterator[StepRecord]:
        """Every record, for inspection or resumption."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of unfinished steps."""

    @abc.abstractmethod
    def set_initial_input(self, payload: Any) -> None:
        """Store the run's shared step-0 input once."""

    @abc.abstractmethod
    def initial_input(self) -> Any:
        """The stored step-0 input."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the backend's resources. The records stay where the backend keeps them."""

    def __enter__(self) -> TaskRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryRegistry(TaskRegistry):
    """A dict of records in the client process: fast, and gone with the process."""

    def __init__(self) -> None:
        self._records: dict[RecordKey, StepRecord] = {}
        self._initial: Any = None
        self._lock = threading.Lock()

    def update(
        self,
        *,
        add: Sequence[StepRecord] = (),
        remove: Iterable[RecordKey] = (),
        delivered: Sequence[Delivery] = (),
        failed: Sequence[tuple[RecordKey, str]] = (),
        progress: Mapping[str, str] | None = None,
    ) -> None:
        with self._lock:
            for record in add:
                self._records[record.key] = record
            for key in [*remove, *(key for key, _ in failed)]:
                self._records.pop(key, None)

    def set_attempts(self, attempts: Iterable[tuple[RecordKey, int]]) -> None:
        with self._lock:
            for key, count in attempts:
                record = self._records.get(key)
                if record is not None:
                    self._records[key] = replace(record, attempts=count)

    def get_many(self, keys: Sequence[RecordKey]) -> list[StepRecord | None]:
        return [self._records.get(key) for key in keys]

    def records(self) -> Iterator[StepRecord]:
        with self._lock:
            snapshot = list(self._records.values())
        return iter(snapshot)

    def __len__(self) -> int:
        return len(self._records)

    def set_initial_input(self, payload: Any) -> None:
        self._initial = payload

    def initial_input(self) -> Any:
        return self._initial
