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

import functools
import hmac
import json
import os
import pickle
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import cloudpickle

from resilience.errors import RegistryError
from resilience.registry import (
    INITIAL_INPUT,
    Delivery,
    RecordKey,
    StepRecord,
    TaskRegistry,
)
from resilience.signing import Signer, check_key, create_key, key_path, read_key
from resilience.tasks import TaskId

SCHEMA_VERSION = 3
APPLICATION_ID = 0x52534C43  # "RSLC": marks a SQLite file as one of our registries

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL, mac BLOB NOT NULL);
-- The id of every admitted task, kept after it finishes: ids are unique within a run.
-- Nothing here is unpickled, so it is not signed.
CREATE TABLE tasks (task_id TEXT PRIMARY KEY) WITHOUT ROWID;
-- A step's task kwargs are in its row: one row and one MAC per record keeps inserts fast.
CREATE TABLE steps (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    idx TEXT NOT NULL,
    step INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    options TEXT NOT NULL,
    lineage_attempts TEXT NOT NULL,
    started_at REAL NOT NULL,
    payload BLOB,  -- NULL: the run's shared step-0 input, kept in meta
    kwargs BLOB NOT NULL,
    mac BLOB NOT NULL,
    UNIQUE (task_id, idx)
);
-- The ledger. committed=0 marks an output being written to the output folder;
-- a restart removes such files (see resilience.sink).
CREATE TABLE outputs (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    idx TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    file TEXT,
    score TEXT,
    committed INTEGER NOT NULL,
    mac BLOB NOT NULL,
    UNIQUE (task_id, idx)
);
CREATE TABLE failures (
    task_id TEXT NOT NULL, idx TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
"""

_SELECT_OUTPUT = "SELECT task_id, idx, attempts, file, score, committed, mac FROM outputs"
_STEP_COLUMNS = ("task_id, idx, step, attempts, options, lineage_attempts, started_at, "
                 "payload, kwargs, mac")
_SELECT_STEP = f"SELECT {_STEP_COLUMNS} FROM steps"


class SQLiteRegistry(TaskRegistry):
    """A durable registry in the SQLite file at `path`.

    A missing (or empty) file is created with mode 0600, and so is its key file
    (`<path>.key`) unless `key` is given. An existing file is verified first: it must
    be a registry of this schema, intact, and signed with this key.
    read_only: for inspection (`python -m resilience status`); nothing is written.
    """

    durable = True

    def __init__(self, path: str | os.PathLike[str], key: bytes | None = None, *,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if key is not None:
            key = check_key(key)
        self.created = _is_empty(self.path)
        if self.created and read_only:
            raise RegistryError(f"{self.path} does not exist, or is empty: no registry there.")
        try:
            if self.created:
                self._create(key)
            else:
                self._db = self._open_existing(key, read_only)
        except sqlite3.DatabaseError as error:
            raise RegistryError(
                f"cannot read the task registry {self.path}: {error}. The file may be "
                "truncated or not a registry; it was left untouched."
            ) from error

    # -- opening -------------------------------------------------------------------

    def _create(self, key: bytes | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)  # also an empty file that was there before
        if key is None:
            where = key_path(self.path)
            key = read_key(where) if where.exists() else create_key(where)
        self.run_id = uuid.uuid4().hex[:16]
        self._signer = Signer(key, self.run_id)
        self._db = db = _connect(self.path)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed client process without an fsync per commit;
        # after a power cut the last commits may roll back, leaving a consistent file.
        db.execute("PRAGMA synchronous=NORMAL")
        # One transaction: a client killed while creating leaves an empty database,
        # which the next run creates afresh.
        with self._transaction():
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            for statement in _SCHEMA.split(";"):
                db.execute(statement)
            self._write_meta(db, {"run_id": self.run_id, "schema": str(SCHEMA_VERSION),
                                  "created_at": repr(time.time())})

    def _open_existing(self, key: bytes | None, read_only: bool) -> sqlite3.Connection:
        db = (sqlite3.connect(_read_only_uri(self.path), uri=True, isolation_level=None,
                              check_same_thread=False)
              if read_only else _connect(self.path))
        try:
            self._verify(db, key, read_only)
        except BaseException:
            db.close()
            raise
        return db

    def _verify(self, db: sqlite3.Connection, key: bytes | None, read_only: bool) -> None:
        """Refuse anything but an intact registry of this schema, signed with this key."""
        (app_id,) = db.execute("PRAGMA application_id").fetchone()
        if app_id != APPLICATION_ID:
            raise RegistryError(
                f"{self.path} is not a task registry of this library (it may be another "
                "SQLite database, or a registry of an older version); it was left "
                "untouched. Pass another registry_path."
            )
        (check,) = db.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise RegistryError(
                f"the task registry {self.path} is damaged ({check}); it was left untouched. "
                "Restore it from a backup, or pass another registry_path to start afresh."
            )
        meta = dict((name, (value, mac)) for name, value, mac in
                    db.execute("SELECT name, value, mac FROM meta"))
        if "run_id" not in meta:
            raise RegistryError(f"{self.path} holds no run id: it is not a complete registry.")
        self.run_id = bytes(meta["run_id"][0]).decode()
        self._signer = Signer(read_key(key_path(self.path)) if key is None else key,
                              self.run_id)
        bad = [name for name, (value, mac) in meta.items()
               if not self._signer.verify(mac, "meta", name, value)]
        if bad:
            if len(bad) == len(meta):
                raise RegistryError(
                    f"the task registry {self.path} was signed with a different key: it "
                    "belongs to another run, or its key file was replaced. Nothing in it "
                    "was read. Pass the right registry_key, or another registry_path."
                )
            raise RegistryError(
                f"the task registry {self.path} was altered: {', '.join(sorted(bad))} "
                "failed verification. Nothing in it was unpickled; it was left untouched."
            )
        schema = int(bytes(meta["schema"][0]))
        if schema != SCHEMA_VERSION:
            raise RegistryError(
                f"{self.path} has registry schema {schema}, this library reads "
                f"{SCHEMA_VERSION}; use the library version that wrote it, or a new path."
            )
        if not read_only:
            db.execute("PRAGMA synchronous=NORMAL")

    # -- run metadata --------------------------------------------------------------

    def meta(self, name: str) -> str | None:
        """A verified text value of the run's metadata, or None."""
        value = self._meta_blob(name)
        return None if value is None else value.decode()

    def _meta_blob(self, name: str) -> bytes | None:
        with self._reading():
            row = self._db.execute("SELECT value, mac FROM meta WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        value = bytes(row[0])
        if not self._signer.verify(row[1], "meta", name, value):
            raise RegistryError(f"the registry value {name!r} in {self.path} was altered; "
                                "it was not read.")
        return value

    def _put_meta(self, values: Mapping[str, str | bytes]) -> None:
        with self._transaction() as db:
            self._write_meta(db, values)

    def _write_meta(self, db: sqlite3.Connection, values: Mapping[str, str | bytes]) -> None:
        rows = []
        for name, value in values.items():
            blob = value.encode() if isinstance(value, str) else value
            rows.append((name, blob, self._signer.sign("meta", name, blob)))
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?, ?)", rows)

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
        step_rows = [self._step_row(record, pickled) for record in add]
        removed = [(_id(task_id), _idx(index)) for task_id, index in remove]
        removed += [(_id(task_id), _idx(index)) for (task_id, index), _ in failed]
        with self._transaction() as db:
            # A resumed task is re-added: its id is there already.
            db.executemany("INSERT OR IGNORE INTO tasks VALUES (?)",
                           [(row[0],) for record, row in zip(add, step_rows, strict=True)
                            if record.step == 0])
            db.executemany(f"INSERT OR REPLACE INTO steps ({_STEP_COLUMNS}) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", step_rows)
            db.executemany("DELETE FROM steps WHERE task_id=? AND idx=?", removed)
            if delivered:
                self._commit_outputs(db, delivered)
            if failed:
                db.executemany(
                    "INSERT OR REPLACE INTO failures VALUES (?, ?, ?)",
                    [(_id(task_id), _idx(index), reason) for (task_id, index), reason in failed])
            if progress:
                self._write_meta(db, progress)

    def set_attempts(self, attempts: Iterable[tuple[RecordKey, int]]) -> None:
        rows = [(count, _id(task_id), _idx(index)) for (task_id, index), count in attempts]
        with self._transaction() as db:
            db.executemany("UPDATE steps SET attempts=? WHERE task_id=? AND idx=?", rows)

    def get_many(self, keys: Sequence[RecordKey]) -> list[StepRecord | None]:
        with self._reading():
            rows = [self._db.execute(_SELECT_STEP + " WHERE task_id=? AND idx=?",
                                     (_id(task_id), _idx(index))).fetchone()
                    for task_id, index in keys]
        return [None if row is None else self._record(row) for row in rows]

    def records(self) -> Iterator[StepRecord]:
        with self._reading():
            rows = self._db.execute(_SELECT_STEP + " ORDER BY seq").fetchall()
        return (self._record(row) for row in rows)

    def unfinished(self, after: int, upto: int, limit: int) -> list[tuple[int, StepRecord]]:
        """Up to `limit` records with after < seq <= upto, in order, with their seq:
        resumption pages through the steps an earlier session left unfinished."""
        with self._reading():
            rows = self._db.execute(
                f"SELECT seq, {_STEP_COLUMNS} FROM steps WHERE seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (after, upto, limit)).fetchall()
        return [(row[0], self._record(row[1:])) for row in rows]

    def last_seq(self) -> int:
        with self._reading():
            (seq,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM steps").fetchone()
        return int(seq)

    def __len__(self) -> int:
        with self._reading():
            (count,) = self._db.execute("SELECT COUNT(*) FROM steps").fetchone()
        return int(count)

    def set_initial_input(self, payload: Any) -> None:
        self._put_meta({"initial_input": _dumps(payload, by_value=True)})

    def initial_input(self) -> Any:
        blob = self._meta_blob("initial_input")
        if blob is None:
            raise RegistryError(f"{self.path} holds no initial input; it was never stored.")
        return pickle.loads(blob)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- admission, ledger and failures ----------------------------------------------

    def known_task_ids(self, task_ids: Sequence[TaskId]) -> set[TaskId]:
        """Those of `task_ids` that this run already admitted."""
        by_text = {_id(task_id): task_id for task_id in task_ids}
        with self._reading():
            found = [row[0] for chunk in _chunks(list(by_text)) for row in self._db.execute(
                f"SELECT task_id FROM tasks WHERE task_id IN ({_marks(chunk)})", chunk)]
        return {by_text[text] for text in found}

    def stage_outputs(self, entries: Sequence[Delivery]) -> None:
        """Mark outputs as being written to the output folder (committed later by
        `update(delivered=...)`): a restart finds the files of any left uncommitted."""
        rows = [self._output_row(entry, committed=0) for entry in entries]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO outputs (task_id, idx, attempts, file, score, "
                "committed, mac) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def staged_files(self) -> list[str]:
        """The files of outputs staged but never committed (verified: a restart deletes
        them, so a forged entry must never name somebody's file)."""
        with self._reading():
            rows = self._db.execute(_SELECT_OUTPUT + " WHERE committed=0").fetchall()
        files = [self._verified_output(row)[3] for row in rows]
        return [file for file in files if file is not None]

    def drop_staged(self, keys: Sequence[RecordKey] | None = None) -> None:
        """Forget staged, uncommitted outputs: all of them, or those of `keys`."""
        with self._transaction() as db:
            if keys is None:
                db.execute("DELETE FROM outputs WHERE committed=0")
            else:
                db.executemany("DELETE FROM outputs WHERE task_id=? AND idx=? AND committed=0",
                               [(_id(task_id), _idx(index)) for task_id, index in keys])

    def is_delivered(self, keys: Sequence[RecordKey]) -> list[bool]:
        with self._reading():
            rows = [self._db.execute(_SELECT_OUTPUT + " WHERE task_id=? AND idx=?",
                                     (_id(task_id), _idx(index))).fetchone()
                    for task_id, index in keys]
        return [row is not None and self._verified_output(row)[5] == 1 for row in rows]

    def score_lines(self) -> Iterator[str]:
        """The committed scorefile lines, in delivery order (verified)."""
        with self._reading():
            rows = self._db.execute(
                _SELECT_OUTPUT + " WHERE committed=1 AND score IS NOT NULL ORDER BY seq"
            ).fetchall()
        for row in rows:
            yield self._verified_output(row)[4]

    def failures(self) -> list[tuple[RecordKey, str]]:
        with self._reading():
            rows = self._db.execute("SELECT task_id, idx, reason FROM failures").fetchall()
        return [((_task_id(task_id), _tuple(idx)), reason) for task_id, idx, reason in rows]

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
        rows = [self._output_row(entry, committed=1) for entry in entries]
        db.executemany(
            "INSERT INTO outputs (task_id, idx, attempts, file, score, committed, mac) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id, idx) DO UPDATE SET "
            "committed=1, mac=excluded.mac", rows)

    def _output_row(self, entry: Delivery, committed: int) -> tuple[Any, ...]:
        if entry.file is not None and Path(entry.file).name != entry.file:
            raise ValueError(f"an output file must be a plain name, not {entry.file!r}")
        row = (_id(entry.task_id), _idx(entry.index), entry.attempts, entry.file, entry.score,
               committed)
        return (*row, self._output_mac(*row))

    def _output_mac(self, task_id: str, idx: str, attempts: int, file: str | None,
                    score: str | None, committed: int) -> bytes:
        return self._signer.sign("output", task_id, idx, str(attempts), _nullable(file),
                                 _nullable(score), str(committed))

    def _verified_output(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """An outputs row (task_id, idx, attempts, file, score, committed), verified."""
        *fields, mac = row
        task_id, idx, _, file, _, _ = fields
        if not hmac.compare_digest(mac, self._output_mac(*fields)) or (
                file is not None and Path(file).name != file):
            raise RegistryError(f"the ledger entry of output {task_id} {idx} in {self.path} "
                                "was altered; nothing was read or deleted on its account.")
        return tuple(fields)

    def _step_row(self, record: StepRecord, pickled: dict[int, bytes]) -> tuple[Any, ...]:
        task_id, idx = _id(record.task_id), _idx(record.index)
        options = _options_text(record.options)
        lineage = _idx(record.lineage_attempts)
        payload = None if record.payload is INITIAL_INPUT else _dumps(record.payload,
                                                                     by_value=True)
        kwargs = pickled.get(id(record.kwargs))
        if kwargs is None:
            plain = record.kwargs if type(record.kwargs) is dict else dict(record.kwargs)
            kwargs = pickled[id(record.kwargs)] = _dumps(plain)
        mac = self._step_mac(task_id, idx, record.step, options, lineage, record.started_at,
                             payload, kwargs)
        return (task_id, idx, record.step, record.attempts, options, lineage,
                record.started_at, payload, kwargs, mac)

    def _step_mac(self, task_id: str, idx: str, step: int, options: str, lineage: str,
                  started_at: float, payload: bytes | None, kwargs: bytes) -> bytes:
        # The text columns are JSON or numbers, never holding a NUL: one part, joined.
        text = "\0".join((task_id, idx, str(step), options, lineage, repr(float(started_at))))
        return self._signer.sign_bytes(b"step", text.encode(), _nullable(payload), kwargs)

    def _record(self, row: Sequence[Any]) -> StepRecord:
        (task_id, idx, step, attempts, options, lineage, started_at, payload, kwargs,
         mac) = row
        if not hmac.compare_digest(mac, self._step_mac(task_id, idx, step, options, lineage,
                                                       started_at, payload, kwargs)):
            raise RegistryError(
                f"the step record of task {task_id} {idx or '(step 0)'} in {self.path} was "
                "altered; it was not unpickled. Restore the registry, or start afresh.")
        return StepRecord(
            task_id=_task_id(task_id),
            index=_tuple(idx),
            step=step,
            payload=INITIAL_INPUT if payload is None else pickle.loads(payload),
            kwargs=pickle.loads(kwargs),
            attempts=attempts,
            options=_options(options),
            lineage_attempts=_tuple(lineage),
            started_at=started_at,
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock, self.path)

    def _reading(self) -> _Reading:
        return _Reading(self._lock, self.path)


def _is_empty(path: Path) -> bool:
    """No file, an empty one, or a SQLite database without a single table (nothing of
    anyone's to lose): a new registry may be created there."""
    if not path.exists() or path.stat().st_size == 0:
        return True
    try:
        db = sqlite3.connect(_read_only_uri(path), uri=True)
        try:
            (tables,) = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return int(tables) == 0
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return False  # not a database: _open_existing reports it, untouched


def _read_only_uri(path: Path) -> str:
    # as_uri() escapes "?" and "#", which would otherwise start the URI's query.
    return path.resolve().as_uri() + "?mode=ro"


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


class _Reading:
    """`with`: hold the lock; a database error becomes a `RegistryError`."""

    def __init__(self, lock: threading.Lock, path: Path) -> None:
        self._lock, self._path = lock, path

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        self._lock.release()
        if isinstance(exc, sqlite3.DatabaseError):
            raise RegistryError(f"cannot read the task registry {self._path}: {exc}") from exc


class _Transaction:
    """`with`: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK and a `RegistryError` on failure."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, path: Path) -> None:
        self._db, self._lock, self._path = db, lock, path

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException as error:
            self._lock.release()
            if isinstance(error, sqlite3.Error):
                raise self._error(error) from error
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
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        finally:
            self._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise self._error(exc) from exc

    def _error(self, error: sqlite3.Error) -> RegistryError:
        return RegistryError(
            f"the task registry {self._path} could not be written ({error}); nothing of "
            "this change was kept. Free disk space or fix permissions, then rerun: the run "
            "resumes where it stopped."
        )


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    """Pieces of `items` small enough for one `IN (...)` query."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _marks(items: Sequence[object]) -> str:
    return ", ".join("?" * len(items))


def _nullable(value: bytes | str | None) -> bytes:
    """What is signed for a column that may be NULL: NULL and empty differ."""
    if value is None:
        return b"\x00"
    return b"\x01" + (value.encode() if isinstance(value, str) else value)


def _id(task_id: TaskId) -> str:
    # JSON keeps int 5 and str "5" apart. The first two cases are json.dumps, faster.
    if type(task_id) is int:
        return str(task_id)
    if type(task_id) is str:
        return encode_basestring_ascii(task_id)
    return json.dumps(task_id)


def _options_text(options: Mapping[str, Any]) -> str:
    try:
        return _options_json(tuple(options.items()))
    except TypeError:  # an unhashable option value
        return json.dumps(dict(options))


@functools.lru_cache(maxsize=256)
def _options_json(items: tuple[tuple[str, Any], ...]) -> str:
    # Every step of a run has one of a few option sets: encode each once.
    return json.dumps(dict(items))


@functools.lru_cache(maxsize=256)
def _options(text: str) -> Mapping[str, Any]:
    return MappingProxyType(json.loads(text))


def _task_id(text: str) -> TaskId:
    return int(text) if text.isdigit() else cast(TaskId, json.loads(text))


def _idx(index: tuple[int, ...]) -> str:
    return ",".join(map(str, index)) if index else ""


def _tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",")) if text else ()


_PLAIN_TYPES = frozenset({bytes, bytearray, str, int, float, bool, type(None)})


def _dumps(value: Any, by_value: bool = False) -> bytes:
    """Plain pickle where it works (fast: kwargs are usually plain data); cloudpickle for
    what plain pickle cannot take, and always for `by_value` (payloads, which may hold
    objects of the user's script)."""
    if type(value) in _PLAIN_TYPES:
        return pickle.dumps(value, protocol=5)
    if not by_value:
        try:
            return pickle.dumps(value, protocol=5)
        except (pickle.PicklingError, AttributeError, TypeError):
            pass
    return cast(bytes, cloudpickle.dumps(value, protocol=5))
