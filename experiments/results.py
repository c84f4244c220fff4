"""`results.csv`: one row per finished run, appended as runs finish, safe against SIGKILL.

A row is written by one `write()` of a whole line on a file opened with O_APPEND and
then fsynced, so a killed study leaves either the whole row or none of it. Should a
torn line ever be found at the end (a full disk, say), it is cut off before the next
append, and the run it belonged to runs again. A lock file keeps a second runner out of
the same folder, and the (cell, repetition) pairs already present are never run again:
the file never holds two rows for one pair.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from experiments.errors import ResultsError

RESULTS_FILE = "results.csv"
LOCK_FILE = ".study.lock"

COLUMNS = (
    "study", "cell", "repetition", "seed", "preemption_rate", "max_task_replicas",
    "task_registry", "max_attempts", "workers", "tasks", "steps", "step_duration",
    "payload_bytes", "makespan", "goodput", "useful_seconds", "wasted_seconds", "delivered",
    "expected", "failed", "lost", "duplicated", "violations", "violation_kinds", "verdict",
    "run_status", "kills", "kills_by_kind", "harness_kinds",
    "peak_worker_data_bytes", "peak_replica_bytes_per_worker", "registry_bytes",
    "registry_bytes_how", "wall_seconds", "run_dir",
)


class ResultsFile:
    """The results of one study folder; use as a context manager (it holds the lock)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / RESULTS_FILE
        self._lock: Any = None

    def __enter__(self) -> ResultsFile:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / LOCK_FILE, "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ResultsError(
                f"another study runner is writing to {self.folder} (it holds "
                f"{LOCK_FILE}); wait for it to finish, or pass another --out."
            ) from None
        self._create_or_repair()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def done(self) -> set[tuple[str, int]]:
        """The (cell, repetition) pairs that have their row."""
        return {(row["cell"], int(row["repetition"])) for row in read_results(self.path)}

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one run's row, whole, and make it durable before returning."""
        if self._lock is None:
            raise ResultsError("ResultsFile.append outside `with ResultsFile(...)`.")
        missing = set(COLUMNS) - set(row)
        if missing:
            raise ResultsError(f"a results row lacks {sorted(missing)}; every column of "
                               "experiments.results.COLUMNS is needed.")
        line = _line([row.get(column, "") for column in COLUMNS])
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            if os.write(descriptor, line) != len(line):
                raise ResultsError(f"a short write to {self.path} (disk full?); free space and "
                                   "rerun: the torn row is cut off and its run repeated.")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _create_or_repair(self) -> None:
        if not self.path.exists():
            temporary = self.path.with_suffix(".csv.new")
            temporary.write_bytes(_line(COLUMNS))
            os.replace(temporary, self.path)
            return
        data = self.path.read_bytes()
        header = _line(COLUMNS)
        if not data.startswith(header):
            raise ResultsError(
                f"{self.path} does not start with this version's columns; it was written by "
                "another version of experiments. Pass another --out, or move the file away."
            )
        if not data.endswith(b"\n"):  # a torn last row: cut it, its run will run again
            with open(self.path, "r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)
                os.fsync(handle.fileno())


def read_results(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The complete rows of a results file (a torn last line is ignored)."""
    file = Path(path)
    if not file.exists():
        return []
    text = file.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def iter_numeric(rows: list[dict[str, str]], column: str) -> Iterator[float]:
    for row in rows:
        if row.get(column) not in (None, ""):
            yield float(row[column])


def _line(values: Any) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")
