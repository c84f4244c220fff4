"""The output folder: every output in its own file, written exactly once, with a scorefile.

A batch of outputs is delivered in four moves, so that a kill at any point ends, after
the restart's `reconcile`, with each output present exactly once:

1. stage: the ledger rows go into the registry, marked uncommitted;
2. each output is written to a temporary file, fsynced, and linked to its final name
   (never over an existing file), then the folder is fsynced;
3. the scorefile lines are appended and fsynced;
4. the caller commits the ledger rows, the scorefile's length and the removal of the
   step records in one registry transaction.

`reconcile` removes the files of staged, uncommitted outputs (their steps are redone)
and cuts the scorefile back to its committed length.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import cloudpickle

from resilience.errors import OutputError
from resilience.outputs import Output, TaskId
from resilience.registry import Delivery
from resilience.sqlite_registry import SQLiteRegistry

logger = logging.getLogger(__name__)

SCOREFILE = "scores.json"
SCORES_BYTES = "scores_bytes"  # registry metadata: the scorefile's committed length
_SAFE_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
_INTEGER = re.compile(r"-?[0-9]+")


def output_name(task_id: TaskId, index: tuple[int, ...]) -> str:
    """The file name of an output: readable where the task id allows, and injective
    (int 5 and str "5" differ; ids unsafe in a file name are hashed, after a "~")."""
    if isinstance(task_id, int):
        label = str(task_id)
    elif _SAFE_LABEL.fullmatch(task_id) and not _INTEGER.fullmatch(task_id):
        label = task_id
    else:
        label = "~" + hashlib.sha256(json.dumps(task_id).encode()).hexdigest()[:20]
    return f"{label}.{'-'.join(map(str, index))}.pkl"


def load_output(path: str | os.PathLike[str]) -> Any:
    """Read back an output file written by the sink."""
    with open(path, "rb") as file:
        return pickle.load(file)


class OutputSink:
    """Writes outputs to `folder` for one durable run; see the module docstring."""

    def __init__(self, folder: Path, registry: SQLiteRegistry) -> None:
        self.folder = folder
        self.scorefile = folder / SCOREFILE
        self._registry = registry
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create the output folder {folder}: {error}") from error
        self._scores_bytes = int(registry.meta(SCORES_BYTES) or 0)

    def reconcile(self) -> int:
        """Undo what an interrupted delivery left: returns the number of files removed."""
        removed = 0
        for name in self._registry.staged_files():
            for path in (self.folder / name, self._temporary(name)):
                try:
                    path.unlink()
                    removed += path.name == name
                except FileNotFoundError:
                    pass
        self._registry.drop_staged()
        size = self.scorefile.stat().st_size if self.scorefile.exists() else 0
        if size > self._scores_bytes:
            with open(self.scorefile, "r+b") as file:
                file.truncate(self._scores_bytes)
                os.fsync(file.fileno())
        elif size < self._scores_bytes:
            logger.warning("%s is shorter than its committed %d bytes; rewriting it from the "
                           "ledger", self.scorefile, self._scores_bytes)
            self._rewrite_scorefile()
        return removed

    def write(self, outputs: Sequence[tuple[Output, Mapping[str, Any], float]]) -> list[Delivery]:
        """Stage and write (output, task kwargs, task start time) triples; returns the
        ledger entries for the caller to commit with `committed_progress()`."""
        now = time.time()
        entries = []
        for output, kwargs, started_at in outputs:
            file = output_name(output.task_id, output.index)
            entries.append(Delivery(output.task_id, output.index, output.attempts, file=file,
                                    score=_score_line(output, file, kwargs, started_at, now)))
        if not entries:
            return []
        for entry in entries:
            if (self.folder / cast(str, entry.file)).exists():
                raise self._not_ours(entry)
        self._registry.stage_outputs(entries)
        for (output, _, _), entry in zip(outputs, entries, strict=True):
            self._write_file(entry, output.value)
        _fsync_folder(self.folder)
        self._append_scores(cast(str, entry.score) for entry in entries)
        return entries

    def committed_progress(self) -> dict[str, str]:
        """The registry metadata to commit with the entries `write` returned."""
        return {SCORES_BYTES: str(self._scores_bytes)}

    def _not_ours(self, entry: Delivery) -> OutputError:
        return OutputError(
            f"{self.folder / cast(str, entry.file)} already exists and is not in this run's "
            "ledger: it belongs to someone else, so it was not overwritten. Use an empty "
            "output_path, or move that file away."
        )

    def _write_file(self, entry: Delivery, value: Any) -> None:
        name = cast(str, entry.file)
        final, temporary = self.folder / name, self._temporary(name)
        try:
            with open(temporary, "wb") as file:
                cloudpickle.dump(value, file, protocol=5)
                file.flush()
                os.fsync(file.fileno())
            os.link(temporary, final)  # fails rather than replace an existing file
            os.unlink(temporary)
        except FileExistsError:
            # Someone's file appeared since the check: unstage it, or a restart's
            # reconcile would take it for ours and remove it.
            temporary.unlink(missing_ok=True)
            self._registry.drop_staged([entry.key])
            raise self._not_ours(entry) from None
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise OutputError(
                f"could not write the output {final} ({error.strerror or error}). Nothing "
                "was lost: free disk space (or fix the folder), then rerun the same run; it "
                "resumes, and this output is written again."
            ) from error

    def _append_scores(self, lines: Iterable[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode()
        try:
            with open(self.scorefile, "ab") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            with open(self.scorefile, "r+b") as file:  # cut a partial line off now
                file.truncate(self._scores_bytes)
            raise OutputError(
                f"could not append to {self.scorefile} ({error.strerror or error}). Nothing "
                "was lost: free disk space, then rerun the same run to resume."
            ) from error
        self._scores_bytes += len(data)

    def _rewrite_scorefile(self) -> None:
        temporary = self._temporary(SCOREFILE)
        with open(temporary, "wb") as file:
            for line in self._registry.score_lines():
                file.write(line.encode() + b"\n")
            file.flush()
            os.fsync(file.fileno())
            self._scores_bytes = file.tell()
        os.replace(temporary, self.scorefile)
        self._registry.update(progress=self.committed_progress())

    def _temporary(self, name: str) -> Path:
        return self.folder / f".{name}.tmp"


def _score_line(output: Output, file: str, kwargs: Mapping[str, Any], started_at: float,
                now: float) -> str:
    record: dict[str, Any] = {
        "task_id": output.task_id,
        "index": list(output.index),
        "file": file,
        "attempts": output.attempts,
        "step_attempts": list(output.step_attempts),
        "started_at": round(started_at, 3),
        "delivered_at": round(now, 3),
        "seconds": round(now - started_at, 3),
        "kwargs": _scalars(kwargs),
    }
    scores = getattr(output.value, "scores", None)  # e.g. a PyRosetta PackedPose's scores
    if isinstance(scores, Mapping):
        record["scores"] = _scalars(scores)
    return json.dumps(record, sort_keys=True)


def _scalars(values: Mapping[str, Any]) -> dict[str, Any]:
    return {str(name): value for name, value in values.items()
            if isinstance(value, (str, int, float, bool)) or value is None}


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
