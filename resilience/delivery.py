"""Delivery: each output `(task_id, index)` is handed out once, and recorded as delivered.

Dask executes at least once; this is where delivery becomes exactly once. A durable
run asks its ledger on disk whether an output is new (memory stays bounded, and the
answer spans sessions) and commits outputs to it (and to the output folder) in the
same registry transaction that drops their steps; any other run keeps an in-memory
ledger of what it handed out, for the tasks still running only: once a task has no
unfinished step, no attempt of it can produce an output any more (every attempt of a
finished step is cancelled and no longer tracked), so its entries go, and the ledger
follows the work in flight rather than growing with every delivered output.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from resilience.durable import DurableRun
from resilience.outputs import Output, TaskId
from resilience.registry import Delivery, RecordKey, TaskRegistry

# A delivered output, with its task's kwargs and admission time (for the scorefile).
Delivered = tuple[Output, Mapping[str, Any], float]


class DeliveryLedger:
    """Remembers which `(task_id, index)` of the running tasks were delivered; a second
    claim is refused while the task runs."""

    def __init__(self) -> None:
        self._delivered: dict[TaskId, set[tuple[int, ...]]] = {}

    def claim(self, task_id: TaskId, index: tuple[int, ...]) -> bool:
        """True the first time an output is claimed, False ever after (while its task
        runs: see `close`)."""
        delivered = self._delivered.setdefault(task_id, set())
        if index in delivered:
            return False
        delivered.add(index)
        return True

    def close(self, task_ids: Sequence[TaskId]) -> None:
        """These tasks have no unfinished step: nothing of theirs can be claimed again."""
        for task_id in task_ids:
            self._delivered.pop(task_id, None)

    def __len__(self) -> int:
        return sum(map(len, self._delivered.values()))


class Deliverer:
    """Decides which outputs are new, and records the delivered ones."""

    def __init__(self, registry: TaskRegistry | None, durable: DurableRun | None) -> None:
        self._registry = registry
        self._durable = durable
        self._ledger = DeliveryLedger()
        self.delivered = 0

    def hand_out(self, delivered: Sequence[Delivered],
                 finished: Sequence[RecordKey]) -> Iterator[Output]:
        """Yield the outputs and commit them. With an output folder, exactly once on disk:
        written and committed before they are yielded. Otherwise committed once the
        consumer asks for more: a client killed before then redelivers them on resume
        (at least once, never lost)."""
        outputs = [output for output, _, _ in delivered]
        if self._durable is not None and self._durable.sink is not None:
            self.commit(delivered, finished)
            yield from outputs
        else:
            yield from outputs
            self.commit(delivered, finished)

    def claim(self, task_id: TaskId, indexes: Sequence[tuple[int, ...]]) -> list[bool]:
        """Whether each output is new (claimed now, never again)."""
        if self._durable is not None:
            done = self._durable.registry.is_delivered([(task_id, index) for index in indexes])
            return [not flag for flag in done]
        return [self._ledger.claim(task_id, index) for index in indexes]

    def tasks_done(self, task_ids: Sequence[TaskId]) -> None:
        """These tasks have no unfinished step left (delivered, or failed)."""
        self._ledger.close(task_ids)

    def commit(self, delivered: Sequence[Delivered], finished: Sequence[RecordKey]) -> None:
        """Record delivered outputs (ledger, output folder) and drop the records of the
        jobs that produced them (`finished`), in one registry transaction."""
        self.delivered += len(delivered)
        if self._registry is None or not (delivered or finished):
            return
        entries: list[Delivery] = []
        progress = None
        if self._durable is not None and self._durable.sink is not None:
            entries = self._durable.sink.write(list(delivered))
            progress = self._durable.sink.committed_progress()
        elif self._durable is not None:
            entries = [Delivery(o.task_id, o.index, o.attempts) for o, _, _ in delivered]
        self._registry.update(remove=finished, delivered=entries, progress=progress)
