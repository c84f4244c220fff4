"""The "disk" task registry: one signed SQLite file in WAL mode, every change one transaction.

Why SQLite rather than PyRosettaCluster's loose pickle files: a batch of records is
written in one transaction (fast, and never half-written), records are found by key
without listing a directory, and the file survives the client process, which is
what resuming after a head-node crash needs.

Besides the unfinished step records it keeps the run's identity (run id and
fingerprints), how many tasks were admitted, the ledger of delivered outputs and
the failed steps. Every pickled value is signed (a keyed MAC) and verified before it is
unpickled (`resilience.signing`). An existing file is checked before anything is
written to it, and is never replaced: a bad file raises `RegistryError`, untouched.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resilience.errors import RegistryError
from resilience.outputs import TaskId
from resilience.registry import Delivery, RecordKey, StepRecord, TaskRegistry
from resilience.session_lock import SessionLock
from resilience.signing import check_key
from resilience.sqlite_file import Reading, RegistryFile, Transaction, is_empty
from resilience.sqlite_rows import (
    SELECT_OUTPUT,
    SELECT_STEP,
    STEP_COLUMNS,
    RowCodec,
    chunks,
    dumps,
    id_text,
    index_of,
    index_text,
    marks,
    task_id_of,
)

_INITIAL_INPUT = "initial_input"  # the metadata entry of the run's step-0 input


@dataclass(frozen=True)
class RunStart:
    """What a new registry is created with, in the transaction that creates it: a
    session killed at any point leaves either a registry with all of it, or none."""

    progress: Mapping[str, str]
    initial_input: Any


class SQLiteRegistry(TaskRegistry):
    """A durable registry in the SQLite file at `path`.

    A missing (or empty) file is created with mode 0600, and so is its key file
    (`<path>.key`) unless `key` is given. An existing file is verified first: it must
    be a registry of this schema, intact, and signed with this key.
    read_only: for inspection (`python -m resilience status`); nothing is written.
    start: what a newly created file holds from its first transaction (unused when the
    file exists; `created` says which).
    """

    durable = True

    def __init__(self, path: str | os.PathLike[str], key: bytes | None = None, *,
                 read_only: bool = False, start: RunStart | None = None) -> None:
        self.path = Path(path)
        if key is not None:
            key = check_key(key)
        self._session = SessionLock(self.path)
        if not read_only:  # before anything is read: a second session is refused
            self._session.acquire()
        try:
            self._file = self._open(key, read_only, start)
        except BaseException:
            self._session.release(undo=True)
            raise
        self.run_id = self._file.run_id
        self._db = self._file.db
        self._rows = RowCodec(self._file.signer, self.path)

    def _open(self, key: bytes | None, read_only: bool,
              start: RunStart | None) -> RegistryFile:
        self.created = is_empty(self.path)
        if self.created and read_only:
            raise RegistryError(f"{self.path} does not exist, or is empty: no registry there.")
        try:
            return (RegistryFile.create(self.path, key, _start_meta(start)) if self.created
                    else RegistryFile.open(self.path, key, read_only))
        except sqlite3.DatabaseError as error:
            raise RegistryError(
                f"cannot read the task registry {self.path}: {error}. The file may be "
                "truncated or not a registry; it was left untouched."
            ) from error

    # -- run metadata --------------------------------------------------------------

    def meta(self, name: str) -> str | None:
        """A verified text value of the run's metadata, or None."""
        value = self._file.meta_blob(name)
        return None if value is None else value.decode()

    def _put_meta(self, values: Mapping[str, str | bytes]) -> None:
        with self._transaction() as db:
            self._file.write_meta(db, values)

    # -- the TaskRegistry interface ------------------------------------------------

    def update(
        self,
        *,
        add: Sequence[StepRecord] = (),
        remove: Iterable[RecordKey] = (),
        delivered: Sequence[Delivery] = (),
        failed: Sequence[tuple[RecordKey, str]] = (),
        progress: Mapping[str, str] | None = None,
    ) -> None:
        pickled: dict[int, bytes] = {}  # the steps of a task share its kwargs: pickle once
        step_rows = [self._rows.step_row(record, pickled) for record in add]
        removed = [(id_text(task_id), index_text(index)) for task_id, index in remove]
        removed += [(id_text(task_id), index_text(index)) for (task_id, index), _ in failed]
        with self._transaction() as db:
            # A resumed task is re-added: its id is there already.
            db.executemany("INSERT OR IGNORE INTO tasks VALUES (?)",
                           [(row[0],) for record, row in zip(add, step_rows, strict=True)
                            if record.step == 0])
            db.executemany(f"INSERT OR REPLACE INTO steps ({STEP_COLUMNS}) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", step_rows)
            db.executemany("DELETE FROM steps WHERE task_id=? AND idx=?", removed)
            if delivered:
                self._commit_outputs(db, delivered)
            if failed:
                db.executemany(
                    "INSERT OR REPLACE INTO failures VALUES (?, ?, ?)",
                    [(id_text(task_id), index_text(index), reason)
                     for (task_id, index), reason in failed])
            if progress:
                self._file.write_meta(db, progress)

    def set_attempts(self, attempts: Iterable[tuple[RecordKey, int]]) -> None:
        rows = [(count, id_text(task_id), index_text(index))
                for (task_id, index), count in attempts]
        with self._transaction() as db:
            db.executemany("UPDATE steps SET attempts=? WHERE task_id=? AND idx=?", rows)

    def get_many(self, keys: Sequence[RecordKey]) -> list[StepRecord | None]:
        with self._reading():
            rows = [self._db.execute(SELECT_STEP + " WHERE task_id=? AND idx=?",
                                     (id_text(task_id), index_text(index))).fetchone()
                    for task_id, index in keys]
        return [None if row is None else self._rows.record(row) for row in rows]

    def records(self) -> Iterator[StepRecord]:
        with self._reading():
            rows = self._db.execute(SELECT_STEP + " ORDER BY seq").fetchall()
        return (self._rows.record(row) for row in rows)

    def unfinished(self, after: int, upto: int, limit: int) -> list[tuple[int, StepRecord]]:
        """Up to `limit` records with after < seq <= upto, in order, with their seq:
        resumption pages through the steps an earlier session left unfinished."""
        with self._reading():
            rows = self._db.execute(
                f"SELECT seq, {STEP_COLUMNS} FROM steps WHERE seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (after, upto, limit)).fetchall()
        return [(row[0], self._rows.record(row[1:])) for row in rows]

    def last_seq(self) -> int:
        with self._reading():
            (seq,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM steps").fetchone()
        return int(seq)

    def __len__(self) -> int:
        with self._reading():
            (count,) = self._db.execute("SELECT COUNT(*) FROM steps").fetchone()
        return int(count)

    def set_initial_input(self, payload: Any) -> None:
        self._put_meta(_initial_input_meta(payload))

    def initial_input(self) -> Any:
        blob = self._file.meta_blob(_INITIAL_INPUT)
        if blob is None:
            raise RegistryError(f"{self.path} holds no initial input; it was never stored.")
        return pickle.loads(blob)

    def close(self) -> None:
        self._file.close()
        self._session.release()

    # -- admission, ledger and failures ----------------------------------------------

    def known_task_ids(self, task_ids: Sequence[TaskId]) -> set[TaskId]:
        """Those of `task_ids` that this run already admitted."""
        by_text = {id_text(task_id): task_id for task_id in task_ids}
        with self._reading():
            found = [row[0] for chunk in chunks(list(by_text)) for row in self._db.execute(
                f"SELECT task_id FROM tasks WHERE task_id IN ({marks(chunk)})", chunk)]
        return {by_text[text] for text in found}

    def stage_outputs(self, entries: Sequence[Delivery]) -> None:
        """Mark outputs as being written to the output folder (committed later by
        `update(delivered=...)`): a restart finds the files of any left uncommitted."""
        rows = [self._rows.output_row(entry, committed=0) for entry in entries]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO outputs (task_id, idx, attempts, file, score, "
                "committed, mac) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def staged_files(self) -> list[str]:
        """The files of outputs staged but never committed (verified: a restart deletes
        them, so a forged entry must never name somebody's file)."""
        with self._reading():
            rows = self._db.execute(SELECT_OUTPUT + " WHERE committed=0").fetchall()
        files = [self._rows.verified_output(row)[3] for row in rows]
        return [file for file in files if file is not None]

    def drop_staged(self, keys: Sequence[RecordKey] | None = None) -> None:
        """Forget staged, uncommitted outputs: all of them, or those of `keys`."""
        with self._transaction() as db:
            if keys is None:
                db.execute("DELETE FROM outputs WHERE committed=0")
            else:
                db.executemany("DELETE FROM outputs WHERE task_id=? AND idx=? AND committed=0",
                               [(id_text(task_id), index_text(index)) for task_id, index in keys])

    def is_delivered(self, keys: Sequence[RecordKey]) -> list[bool]:
        with self._reading():
            rows = [self._db.execute(SELECT_OUTPUT + " WHERE task_id=? AND idx=?",
                                     (id_text(task_id), index_text(index))).fetchone()
                    for task_id, index in keys]
        return [row is not None and self._rows.verified_output(row)[5] == 1 for row in rows]

    def score_lines(self) -> Iterator[str]:
        """The committed scorefile lines, in delivery order (verified)."""
        with self._reading():
            rows = self._db.execute(
                SELECT_OUTPUT + " WHERE committed=1 AND score IS NOT NULL ORDER BY seq"
            ).fetchall()
        for row in rows:
            yield self._rows.verified_output(row)[4]

    def failures(self) -> list[tuple[RecordKey, str]]:
        with self._reading():
            rows = self._db.execute("SELECT task_id, idx, reason FROM failures").fetchall()
        return [((task_id_of(task_id), index_of(idx)), reason) for task_id, idx, reason in rows]

    def counts(self) -> dict[str, int]:
        """Progress counts, for summaries and `python -m resilience status`."""
        queries = {
            "tasks_admitted": "SELECT COUNT(*) FROM tasks",
            "outputs_delivered": "SELECT COUNT(*) FROM outputs WHERE committed=1",
            "steps_in_flight": "SELECT COUNT(*) FROM steps",
            "steps_failed": "SELECT COUNT(*) FROM failures",
            "tasks_failed": "SELECT COUNT(DISTINCT task_id) FROM failures",
        }
        with self._reading():
            return {name: int(self._db.execute(sql).fetchone()[0])
                    for name, sql in queries.items()}

    def attempts_histogram(self) -> dict[str, dict[int, int]]:
        """attempts -> how many in-flight steps / delivered outputs took that many."""
        with self._reading():
            return {
                "in_flight": dict(self._db.execute(
                    "SELECT attempts, COUNT(*) FROM steps GROUP BY attempts").fetchall()),
                "delivered": dict(self._db.execute(
                    "SELECT attempts, COUNT(*) FROM outputs WHERE committed=1 "
                    "GROUP BY attempts").fetchall()),
            }

    # -- rows ------------------------------------------------------------------------

    def _commit_outputs(self, db: sqlite3.Connection, entries: Sequence[Delivery]) -> None:
        rows = [self._rows.output_row(entry, committed=1) for entry in entries]
        db.executemany(
            "INSERT INTO outputs (task_id, idx, attempts, file, score, committed, mac) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id, idx) DO UPDATE SET "
            "committed=1, mac=excluded.mac", rows)

    def _transaction(self) -> Transaction:
        return self._file.transaction()

    def _reading(self) -> Reading:
        return self._file.reading()


def _start_meta(start: RunStart | None) -> dict[str, str | bytes]:
    if start is None:
        return {}
    return {**start.progress, **_initial_input_meta(start.initial_input)}


def _initial_input_meta(payload: Any) -> dict[str, str | bytes]:
    return {_INITIAL_INPUT: dumps(payload, by_value=True)}
