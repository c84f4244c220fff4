"""Run metadata for `run-start`: package versions and the git commit of this checkout."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from chaos.history.format import HISTORY_VERSION

_PACKAGES = ("resilience-testbed", "dask", "distributed", "cloudpickle", "hypothesis", "pyrosetta")


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, Any]:
    """The history format version, Python's, and each installed package's that matters."""
    found: dict[str, Any] = {"history": HISTORY_VERSION, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """HEAD of the repository holding this package, or None (no git, no commit yet)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
