"""Opening a durable run: a new one, or the same run resumed after its client died.

A run is identified by the run id in its registry, and by two fingerprints: its
protocols (names and code) and its task ids in order. Resuming with other protocols
or other tasks is refused, unless `start_afresh`, which moves the old registry and
output folder aside (nothing is deleted) and starts a new run.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resilience.errors import RegistryError
from resilience.fingerprint import TaskIdDigest, protocol_names, protocols_fingerprint
from resilience.registry import StepRecord
from resilience.session_lock import refuse_if_in_use
from resilience.signing import key_path
from resilience.sink import OutputSink
from resilience.sqlite_registry import RunStart, SQLiteRegistry
from resilience.tasks import TaskSpec

logger = logging.getLogger(__name__)

ADMITTED = "admitted"  # registry metadata: tasks taken from the task list so far
TASK_DIGEST = "task_digest"  # ... and the digest of their ids
_PROTOCOLS = "protocols"
_PROTOCOL_NAMES = "protocol_names"


@dataclass
class DurableRun:
    """The durable state of one run, as the run loop uses it."""

    registry: SQLiteRegistry
    sink: OutputSink | None
    resumed: bool
    admitted: int
    digest: TaskIdDigest
    previously_delivered: int
    _cursor: int = 0
    _upto: int = field(default=0)

    def unfinished(self, limit: int) -> list[StepRecord]:
        """The next `limit` steps an earlier session left unfinished (empty when done).
        Paged, so a registry of a million steps is never loaded at once."""
        if self._cursor >= self._upto:
            return []
        page = self.registry.unfinished(self._cursor, self._upto, limit)
        self._cursor = page[-1][0] if page else self._upto
        return [record for _, record in page]

    def admitted_progress(self, tasks: Sequence[TaskSpec]) -> dict[str, str]:
        """Count `tasks` as admitted; returns the metadata to commit with their records."""
        for task in tasks:
            self.digest.add(task.position, task.task_id)
        self.admitted += len(tasks)
        return {ADMITTED: str(self.admitted), TASK_DIGEST: self.digest.value}


def open_durable_run(
    path: Path,
    key: bytes | None,
    output_path: Path | None,
    protocols: Sequence[Callable[..., Any]],
    tasks: Iterator[TaskSpec],
    start_afresh: bool,
    *,
    initial_input: Any = None,
) -> DurableRun:
    """Open (or create) the registry at `path` and check it is this run.

    A new run's registry is created with its fingerprints and `initial_input` in one
    transaction, so a session killed while starting leaves nothing half-begun. On resume
    the first `admitted` tasks are drawn from `tasks` (lazily) to check the task
    fingerprint; the caller goes on drawing from the same iterator.
    """
    if start_afresh:
        refuse_if_in_use(path)  # its session would go on writing what was moved aside
        _move_aside(path, output_path)
    fingerprint = protocols_fingerprint(protocols)
    start = RunStart({_PROTOCOLS: fingerprint,
                      _PROTOCOL_NAMES: ", ".join(protocol_names(protocols)),
                      ADMITTED: "0", TASK_DIGEST: TaskIdDigest().value}, initial_input)
    registry = SQLiteRegistry(path, key, start=start)
    try:
        if registry.created:
            admitted, digest = 0, TaskIdDigest()
        else:
            _check_protocols(registry, fingerprint, protocols)
            admitted, digest = _check_tasks(registry, tasks)
        sink = None
        if output_path is not None:
            sink = OutputSink(output_path, registry)
            removed = sink.reconcile()
            if removed:
                logger.info("removed %d output file(s) an interrupted delivery left "
                            "uncommitted; their steps are redone", removed)
        run = DurableRun(registry, sink, resumed=not registry.created, admitted=admitted,
                         digest=digest,
                         previously_delivered=registry.counts()["outputs_delivered"])
        run._upto = registry.last_seq()
        return run
    except BaseException:
        registry.close()
        raise


def _check_protocols(registry: SQLiteRegistry, fingerprint: str,
                     protocols: Sequence[Callable[..., Any]]) -> None:
    stored = registry.meta(_PROTOCOLS)
    if stored is None:
        raise RegistryError(
            f"{registry.path} holds no run fingerprint: it was not written by a run. "
            "Pass another registry_path, or start_afresh=True to move it aside."
        )
    if stored != fingerprint:
        raise RegistryError(
            f"{registry.path} belongs to a run of other protocols (it ran "
            f"[{registry.meta(_PROTOCOL_NAMES)}]; these are "
            f"[{', '.join(protocol_names(protocols))}], or their code changed). Resuming "
            "would mix results of both. Rerun with the original protocols, or pass "
            "start_afresh=True (the old registry and outputs are moved aside, not deleted)."
        )


def _check_tasks(registry: SQLiteRegistry, tasks: Iterator[TaskSpec]) -> tuple[int, TaskIdDigest]:
    admitted = int(registry.meta(ADMITTED) or 0)
    digest = TaskIdDigest()
    seen = 0
    for task in itertools.islice(tasks, admitted):  # exactly those, lazily
        digest.add(task.position, task.task_id)
        seen += 1
    if seen < admitted or digest.value != registry.meta(TASK_DIGEST):
        what = (f"it has only {seen} task(s), and the run had already started {admitted}"
                if seen < admitted else
                f"the ids (or order) of its first {admitted} task(s) differ")
        raise RegistryError(
            f"{registry.path} belongs to a run of other tasks: {what}. Resuming would "
            "mix results of both. Pass the original tasks (more may follow them), or "
            "start_afresh=True (the old registry and outputs are moved aside, not deleted)."
        )
    return admitted, digest


def _move_aside(path: Path, output_path: Path | None) -> None:
    """Rename the old registry, its key and the output folder with a `.replaced-<time>`
    suffix: starting afresh never deletes anything (nor renames over an earlier one)."""
    olds = [old for old in (output_path, path, path.with_name(path.name + "-wal"),
                            path.with_name(path.name + "-shm"), key_path(path))
            if old is not None and old.exists()]
    stamp = suffix = time.strftime(".replaced-%Y%m%d-%H%M%S")
    attempt = 1
    while any(_suffixed(old, suffix).exists() for old in olds):
        attempt += 1
        suffix = f"{stamp}-{attempt}"
    for old in olds:
        if old.exists():  # the registry may have gone with the output folder
            old.rename(_suffixed(old, suffix))
    if olds:
        logger.warning("start_afresh: moved aside %s (suffix %s)",
                       ", ".join(map(str, olds)), suffix)


def _suffixed(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)
