"""Snapshots of the watched paths, and what changed between two of them.

A snapshot records, for every file under the watched paths, its size, its mtime in
nanoseconds and, for files of at most `HASHED_BYTES`, a hash of its content (so that
a rewrite within the same nanosecond tick, or with the same size, is still seen). Hashes
are cached by (path, size, mtime, ctime, inode), so a snapshot of an unchanged tree
costs one `stat` per file.

Some folders are never watched, because their owners write there whatever the
protocols do: Dask's worker scratch space (`dask-scratch-space`, formerly
`dask-worker-space`, where workers keep spilled data and their lock files), Python's
bytecode caches (a worker importing a module writes `__pycache__`), version-control
and tool caches, and virtual environments (a folder holding `pyvenv.cfg`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from chaos.testing.errors import CheckError

# Folder names skipped wherever they appear under a watched path (see the docstring).
EXCLUDED_NAMES: tuple[str, ...] = (
    "dask-scratch-space", "dask-worker-space", "__pycache__", ".git", ".hg", ".svn",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".nox", ".tox",
    ".ipynb_checkpoints",
)
HASHED_BYTES = 64 * 1024  # files up to this size are hashed as well as stat-ed
MAX_FILES = 20_000  # a bound on the work of one snapshot

Change = Literal["created", "changed", "deleted"]


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    digest: str | None  # None for files larger than HASHED_BYTES


@dataclass(frozen=True)
class FileChange:
    path: str
    change: Change
    before: FileState | None
    after: FileState | None

    def describe(self, relative_to: Path | None = None) -> str:
        shown = _shown(self.path, relative_to)
        if self.change == "created" and self.after is not None:
            return f"created {shown} ({self.after.size:,} bytes)"
        if self.change == "deleted":
            return f"deleted {shown}"
        before, after = self.before, self.after
        if before is not None and after is not None:
            if before.size != after.size:
                return f"changed {shown} ({before.size:,} -> {after.size:,} bytes)"
            if before.digest is not None and before.digest == after.digest:
                return f"rewrote {shown} (same content)"
            if before.digest is not None and after.digest is not None:
                return f"changed {shown} (other content, {after.size:,} bytes)"
        return f"changed {shown}"


class DirectoryWatch:
    """Takes snapshots of `roots` (folders or files); reuses the hashes of unchanged files."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]], *, max_files: int = MAX_FILES
                 ) -> None:
        self.roots: tuple[Path, ...] = tuple(dict.fromkeys(Path(r).resolve() for r in roots))
        for root in self.roots:
            if not root.exists():
                raise CheckError(f"watched path {str(root)!r} does not exist: create it, "
                                    "or leave it out of watch=.")
        self.max_files = max_files
        self._hashes: dict[tuple[str, int, int, int, int], str] = {}

    def snapshot(self) -> dict[str, FileState]:
        files: dict[str, FileState] = {}
        for root in self.roots:
            if root.is_file():
                self._record(os.fspath(root), files)
            else:
                self._walk(os.fspath(root), files)
        return files

    def _walk(self, folder: str, files: dict[str, FileState]) -> None:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return  # removed or unreadable while we looked: nothing to record there
        if any(entry.name == "pyvenv.cfg" for entry in entries):
            return  # a virtual environment
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in EXCLUDED_NAMES:
                    self._walk(entry.path, files)
            elif entry.is_file(follow_symlinks=False):
                self._record(entry.path, files)

    def _record(self, path: str, files: dict[str, FileState]) -> None:
        try:
            stat = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return
        digest = None
        if stat.st_size <= HASHED_BYTES:
            # ctime too: a write changes it, and unlike mtime it cannot be set back.
            key = (path, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
            digest = self._hashes.get(key)
            if digest is None:
                digest = _hash(path)
                if digest is not None:
                    self._hashes[key] = digest
        files[path] = FileState(stat.st_size, stat.st_mtime_ns, digest)
        if len(files) > self.max_files:
            raise CheckError(
                f"the watched paths {', '.join(map(str, self.roots))} hold more than "
                f"{self.max_files:,} files: run the check from a small working directory "
                "(pytest's tmp_path with monkeypatch.chdir) and watch only the folders your "
                "protocols may write to."
            )


def changes(before: Mapping[str, FileState], after: Mapping[str, FileState]
            ) -> list[FileChange]:
    """Files created, changed or deleted from `before` to `after`, sorted by path."""
    found = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old is None:
            found.append(FileChange(path, "created", None, new))
        elif new is None:
            found.append(FileChange(path, "deleted", old, None))
        elif old != new:
            found.append(FileChange(path, "changed", old, new))
    return found


def describe_changes(found: list[FileChange], relative_to: Path | None = None,
                     shown: int = 5) -> str:
    """'created a (3 bytes); deleted b', at most `shown` of them."""
    text = "; ".join(change.describe(relative_to) for change in found[:shown])
    if len(found) > shown:
        text += f"; and {len(found) - shown} more"
    return text


def _hash(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            return hashlib.blake2b(file.read(), digest_size=16).hexdigest()
    except OSError:
        return None


def _shown(path: str, relative_to: Path | None) -> str:
    if relative_to is not None:
        try:
            return os.fspath(Path(path).relative_to(relative_to))
        except ValueError:
            pass
    return path
