"""The registry's SQLite file: schema, creation, verification on opening, transactions.

A new file is created with mode 0600 in WAL mode, in one transaction (a client killed
while creating leaves an empty database, perhaps with a rollback journal to undo first,
which the next run creates afresh). An
existing file is verified before anything is written to it, and is never replaced:
it must carry this library's application id and schema, pass SQLite's quick check,
and every metadata value must verify under the key. A bad file raises
`RegistryError` and is left untouched.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from resilience.errors import RegistryError
from resilience.signing import Signer, create_key, key_path, read_key

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


class RegistryFile:
    """An open registry file: its connection, run id and signer, and one lock for both."""

    def __init__(self, path: Path, db: sqlite3.Connection, run_id: str, signer: Signer) -> None:
        self.path = path
        self.db = db
        self.run_id = run_id
        self.signer = signer
        self.lock = threading.Lock()

    @classmethod
    def create(cls, path: Path, key: bytes | None,
               meta: Mapping[str, str | bytes] | None = None) -> RegistryFile:
        """A new registry at `path` (missing, or empty), its key file made if need be;
        `meta` is written in the transaction that creates it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)  # also an empty file that was there before
        if key is None:
            where = key_path(path)
            key = read_key(where) if where.exists() else create_key(where)
        run_id = uuid.uuid4().hex[:16]
        db = connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed client process without an fsync per commit;
        # after a power cut the last commits may roll back, leaving a consistent file.
        db.execute("PRAGMA synchronous=NORMAL")
        opened = cls(path, db, run_id, Signer(key, run_id))
        with opened.transaction():
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            for statement in _SCHEMA.split(";"):
                db.execute(statement)
            opened.write_meta(db, {"run_id": run_id, "schema": str(SCHEMA_VERSION),
                                   "created_at": repr(time.time()), **(meta or {})})
        return opened

    @classmethod
    def open(cls, path: Path, key: bytes | None, read_only: bool) -> RegistryFile:
        """The registry at `path`, verified (see the module's docstring)."""
        db = (sqlite3.connect(read_only_uri(path), uri=True, isolation_level=None,
                              check_same_thread=False)
              if read_only else connect(path))
        try:
            run_id, signer = _verify(path, db, key, read_only)
        except BaseException:
            db.close()
            raise
        return cls(path, db, run_id, signer)

    def transaction(self) -> Transaction:
        return Transaction(self.db, self.lock, self.path)

    def reading(self) -> Reading:
        return Reading(self.lock, self.path)

    def meta_blob(self, name: str) -> bytes | None:
        """A verified metadata value, or None."""
        with self.reading():
            row = self.db.execute("SELECT value, mac FROM meta WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        value = bytes(row[0])
        if not self.signer.verify(row[1], "meta", name, value):
            raise RegistryError(f"the registry value {name!r} in {self.path} was altered; "
                                "it was not read.")
        return value

    def write_meta(self, db: sqlite3.Connection, values: Mapping[str, str | bytes]) -> None:
        rows = []
        for name, value in values.items():
            blob = value.encode() if isinstance(value, str) else value
            rows.append((name, blob, self.signer.sign("meta", name, blob)))
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        with self.lock:
            self.db.close()


def _verify(path: Path, db: sqlite3.Connection, key: bytes | None,
            read_only: bool) -> tuple[str, Signer]:
    """Refuse anything but an intact registry of this schema, signed with this key."""
    (app_id,) = db.execute("PRAGMA application_id").fetchone()
    if app_id != APPLICATION_ID:
        raise RegistryError(
            f"{path} is not a task registry of this library (it may be another "
            "SQLite database, or a registry of an older version); it was left "
            "untouched. Pass another registry_path."
        )
    (check,) = db.execute("PRAGMA quick_check").fetchone()
    if check != "ok":
        raise RegistryError(
            f"the task registry {path} is damaged ({check}); it was left untouched. "
            "Restore it from a backup, or pass another registry_path to start afresh."
        )
    meta = dict((name, (value, mac)) for name, value, mac in
                db.execute("SELECT name, value, mac FROM meta"))
    if "run_id" not in meta:
        raise RegistryError(f"{path} holds no run id: it is not a complete registry.")
    run_id = bytes(meta["run_id"][0]).decode()
    signer = Signer(read_key(key_path(path)) if key is None else key, run_id)
    bad = [name for name, (value, mac) in meta.items()
           if not signer.verify(mac, "meta", name, value)]
    if bad:
        if len(bad) == len(meta):
            raise RegistryError(
                f"the task registry {path} was signed with a different key: it "
                "belongs to another run, or its key file was replaced. Nothing in it "
                "was read. Pass the right registry_key, or another registry_path."
            )
        raise RegistryError(
            f"the task registry {path} was altered: {', '.join(sorted(bad))} "
            "failed verification. Nothing in it was unpickled; it was left untouched."
        )
    schema = int(bytes(meta["schema"][0]))
    if schema != SCHEMA_VERSION:
        raise RegistryError(
            f"{path} has registry schema {schema}, this library reads "
            f"{SCHEMA_VERSION}; use the library version that wrote it, or a new path."
        )
    if not read_only:
        db.execute("PRAGMA synchronous=NORMAL")
    return run_id, signer


def is_empty(path: Path) -> bool:
    """No file, an empty one, or a SQLite database without a single table (nothing of
    anyone's to lose): a new registry may be created there."""
    if not path.exists() or path.stat().st_size == 0:
        return True
    # A rollback journal beside it: a creation killed while switching the new file to WAL
    # (itself a rollback-journal transaction). A read-only connection cannot roll the
    # journal back, and fails; a writable one does, as every SQLite writer does on opening.
    hot = path.with_name(path.name + "-journal").exists()
    try:
        db = sqlite3.connect(path.resolve().as_uri() if hot else read_only_uri(path), uri=True)
        try:
            (tables,) = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return int(tables) == 0
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return False  # not a database: _open_existing reports it, untouched


def read_only_uri(path: Path) -> str:
    # as_uri() escapes "?" and "#", which would otherwise start the URI's query.
    return path.resolve().as_uri() + "?mode=ro"


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


class Reading:
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


class Transaction:
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
