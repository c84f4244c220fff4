"""The "disk" task registry: one SQLite file in WAL mode, every change one transaction.

Why SQLite rather than PyRosettaCluster's loose pickle files: a batch of records is
written in one transaction (fast, and never half-written), records are found by key
without listing a directory, and the file survives the client process, which is
what resuming after a head-node crash needs.

Task kwargs are stored once per task, and the run's shared step-0 input once per
run, so a step record holds only its own input.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import cloudpickle

from resilience.errors import RegistryError
from resilience.registry import INITIAL_INPUT, RecordKey, StepRecord, TaskRegistry
from resilience.tasks import TaskId

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, kwargs BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    task_id TEXT NOT NULL,
    idx TEXT NOT NULL,
    step INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    options TEXT NOT NULL,
    lineage_attempts TEXT NOT NULL,
    payload BLOB,  -- NULL: the run's shared step-0 input, kept in meta
    PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
"""


# A task's kwargs go when its last step does.
_DELETE_TASK_IF_DONE = (
    "DELETE FROM tasks WHERE task_id=? AND NOT EXISTS "
    "(SELECT 1 FROM steps WHERE steps.task_id=tasks.task_id)"
)


class SQLiteRegistry(TaskRegistry):
    """A durable registry in the SQLite file at `path` (created if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        # Task ids whose kwargs this instance stored: children need not store them again.
        self._stored_kwargs: set[str] = set()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # WAL + NORMAL survives a killed client process without an fsync per commit;
            # after a power cut the last commits may roll back, leaving a consistent file.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as error:
            raise RegistryError(
                f"cannot open the task registry {self.path}: {error}. If the file is not a "
                "registry, pass another registry_path; it is left untouched."
            ) from error

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION).encode(),)
            )
        elif int(row[0]) != SCHEMA_VERSION:
            raise RegistryError(
                f"{self.path} has registry schema {int(row[0])}, this library reads "
                f"{SCHEMA_VERSION}; use the library version that wrote it, or a new path."
            )

    def update(
        self, *, add: Sequence[StepRecord] = (), remove: Iterable[RecordKey] = ()
    ) -> None:
        rows = [_row(record) for record in add]
        new_tasks = {
            _id(r.task_id): r.kwargs for r in add if _id(r.task_id) not in self._stored_kwargs
        }
        kwargs_rows = [(task_id, _dumps(dict(kwargs))) for task_id, kwargs in new_tasks.items()]
        removed = [(_id(task_id), _idx(index)) for task_id, index in remove]
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO tasks VALUES (?, ?)", kwargs_rows)
            db.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("DELETE FROM steps WHERE task_id=? AND idx=?", removed)
            gone = [task_id for task_id in {task_id for task_id, _ in removed}
                    if db.execute(_DELETE_TASK_IF_DONE, (task_id,)).rowcount]
        self._stored_kwargs.update(new_tasks)
        self._stored_kwargs.difference_update(gone)

    def add_attempt(self, keys: Iterable[RecordKey]) -> None:
        wanted = [(_id(task_id), _idx(index)) for task_id, index in keys]
        with self._transaction() as db:
            db.executemany(
                "UPDATE steps SET attempts = attempts + 1 WHERE task_id=? AND idx=?", wanted
            )

    def get_many(self, keys: Sequence[RecordKey]) -> list[StepRecord | None]:
        with self._lock:
            return [self._select(self._db, _id(task_id), _idx(index)) for task_id, index in keys]

    def records(self) -> Iterator[StepRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT s.*, t.kwargs FROM steps s JOIN tasks t USING (task_id)"
            ).fetchall()
        return (_record(row) for row in rows)

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM steps").fetchone()
        return int(count)

    def set_initial_input(self, payload: Any) -> None:
        blob = _dumps(payload)
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('initial_input', ?)", (blob,))

    def initial_input(self) -> Any:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM meta WHERE name='initial_input'"
            ).fetchone()
        if row is None:
            raise RegistryError(f"{self.path} holds no initial input; it was never stored.")
        return cloudpickle.loads(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock, self.path)

    @staticmethod
    def _select(db: sqlite3.Connection, task_id: str, idx: str) -> StepRecord | None:
        row = db.execute(
            "SELECT s.*, t.kwargs FROM steps s JOIN tasks t USING (task_id) "
            "WHERE s.task_id=? AND s.idx=?",
            (task_id, idx),
        ).fetchone()
        return None if row is None else _record(row)


class _Transaction:
    """`with`: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK and a `RegistryError` on failure."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, path: Path) -> None:
        self._db, self._lock, self._path = db, lock, path

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        try:
            if exc_type is None:
                try:
                    self._db.execute("COMMIT")
                    return
                except sqlite3.Error as error:
                    exc = error
            self._db.execute("ROLLBACK")
        finally:
            self._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise RegistryError(
                f"the task registry {self._path} could not be written ({exc}); nothing of "
                "this change was kept. Free disk space or fix permissions, then rerun."
            ) from exc


def _id(task_id: TaskId) -> str:
    # JSON keeps int 5 and str "5" apart.
    return json.dumps(task_id)


def _idx(index: tuple[int, ...]) -> str:
    return ",".join(map(str, index))


def _dumps(value: Any) -> bytes:
    return cast(bytes, cloudpickle.dumps(value, protocol=5))


def _row(record: StepRecord) -> tuple[Any, ...]:
    payload = None if record.payload is INITIAL_INPUT else _dumps(record.payload)
    return (
        _id(record.task_id),
        _idx(record.index),
        record.step,
        record.attempts,
        json.dumps(dict(record.options)),
        _idx(record.lineage_attempts),
        payload,
    )


def _record(row: tuple[Any, ...]) -> StepRecord:
    task_id, idx, step, attempts, options, lineage, payload, kwargs = row
    return StepRecord(
        task_id=json.loads(task_id),
        index=_tuple(idx),
        step=step,
        payload=INITIAL_INPUT if payload is None else cloudpickle.loads(payload),
        kwargs=cloudpickle.loads(kwargs),
        attempts=attempts,
        options=json.loads(options),
        lineage_attempts=_tuple(lineage),
    )


def _tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",")) if text else ()
