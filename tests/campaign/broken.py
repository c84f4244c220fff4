"""Deliberately broken variants of the library, as campaign targets (test fixtures only).

Each is the real `resilience` library with one safeguard switched off for the
duration of its own run (`unittest.mock.patch`, undone when the run returns), so the
campaign can show it catches exactly that breakage:

- `resilience-drops-lost`: a step whose input or worker was lost is dropped without a
  word, neither resubmitted from the registry nor reported failed. This is what
  PyRosettaCluster does with a chain that hits `KilledWorker`. Expected verdict: lost.
- `resilience-no-dedup`: deduplication off. Attempts that lose the race to a faster
  attempt of the same step (a `step_timeout` speculative attempt) are no longer
  cancelled, and their late results are delivered again instead of being suppressed.
  Expected verdict: duplicated.

They patch `resilience.runloop.RunLoop` and `resilience.jobs.JobBook` internals: if the
library renames them, the patch fails loudly (AttributeError) rather than testing nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar
from unittest import mock

from chaos.harness import Target, TargetRun, make_target
from chaos.harness.targets.resilient import ResilienceTarget


class DropsLostTasks(ResilienceTarget):
    name: ClassVar[str] = "resilience-drops-lost"

    def run(self, run: TargetRun) -> None:
        from resilience.runloop import RunLoop

        original = RunLoop._retry_or_fail

        def drop_silently(loop: Any, job: Any, cause: str, error: str) -> None:
            if cause not in ("lost-input", "killed-worker"):
                return original(loop, job, cause, error)
            job.done = True  # forget the step: no resubmission, no TaskFailed
            loop._book.jobs.pop(job.key, None)
            if loop._registry is not None:
                loop._registry.update(remove=[job.key])
            return None

        with mock.patch.object(RunLoop, "_retry_or_fail", drop_silently):
            super().run(run)


class DeliversDuplicates(ResilienceTarget):
    name: ClassVar[str] = "resilience-no-dedup"

    def run(self, run: TargetRun) -> None:
        from resilience import events
        from resilience.jobs import JobBook
        from resilience.runloop import RunLoop

        # Outputs delivered so far, by (task_id, input lineage of the final step).
        delivered: dict[tuple[Any, tuple[int, ...]], list[tuple[tuple[int, ...], Any]]] = {}
        lock = threading.Lock()
        last_step = run.workload.n_steps - 1
        deliver = run.deliver

        def deliver_and_remember(task_id: Any, index: tuple[int, ...], value: Any,
                                 attempts: int) -> None:
            with lock:
                delivered.setdefault((task_id, tuple(index[:-1])), []).append((index, value))
            deliver(task_id, index, value, attempts)

        def keep_losers(book: Any, job: Any) -> list[Any]:
            job.done = True  # losing attempts stay tracked, run on, and their results
            book.jobs.pop(job.key, None)  # come back
            return []

        original_emit = RunLoop._emit

        def emit(loop: Any, event: Any) -> None:
            original_emit(loop, event)
            if isinstance(event, events.DuplicateSuppressed) and event.step == last_step:
                with lock:
                    again = list(delivered.get((event.task_id, tuple(event.index)), ()))
                for index, value in again:  # what dedup would have dropped, delivered
                    deliver(event.task_id, index, value, event.attempt)

        run.deliver = deliver_and_remember  # type: ignore[method-assign]
        with _patched(RunLoop, _emit=emit), _patched(JobBook, finish=keep_losers):
            super().run(run)


BROKEN: dict[str, type[ResilienceTarget]] = {
    cls.name: cls for cls in (DropsLostTasks, DeliversDuplicates)
}


def make_any_target(name: str) -> Target:
    """The campaign's target factory, knowing the broken variants too."""
    return BROKEN[name]() if name in BROKEN else make_target(name)


@contextmanager
def _patched(owner: type, **replacements: Any) -> Iterator[None]:
    with mock.patch.multiple(owner, **replacements):
        yield
