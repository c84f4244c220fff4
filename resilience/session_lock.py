"""One session at a time on a durable registry: an exclusive lock on a file beside it.

Two clients on one durable run (a head node taken for dead that still runs, a job
submitted twice) would both redo its unfinished steps and interleave their writes to the
output folder; the second is refused, and told which process holds the run. The
operating system drops the lock when its process ends, by SIGKILL too, so a resume after
a crash finds it free. A file system without locks (some network mounts) gets a warning
and no lock.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import IO

from resilience.errors import RegistryError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs go unguarded
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)


def lock_path(registry: Path) -> Path:
    return registry.with_name(registry.name + ".lock")


class SessionLock:
    """Held from `acquire` to `release` by the session writing `registry`."""

    def __init__(self, registry: Path) -> None:
        self.registry = registry
        self.path = lock_path(registry)
        self._file: IO[str] | None = None
        self._made = False

    def acquire(self) -> None:
        """Take the lock, or raise RegistryError naming the session that holds it."""
        if fcntl is None:
            return
        self._made = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (until release)
        except OSError as error:  # the registry's own opening says what is wrong
            logger.warning("cannot create %s (%s): this session holds no lock", self.path,
                           error)
            return
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "a process that has not said which"
            file.close()
            raise RegistryError(
                f"{self.registry} is in use by another session of this run "
                f"({holder}). Two sessions would both redo its unfinished steps: stop that "
                "one first (its lock goes when its process ends), or use another "
                "output_path / registry_path."
            ) from None
        except OSError as error:  # ENOLCK, EOPNOTSUPP: no locks on this file system
            file.close()
            logger.warning("cannot lock %s (%s): nothing stops a second session of this "
                           "run from starting beside this one", self.path, error)
            return
        file.truncate(0)
        file.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        file.flush()
        self._file = file

    def release(self, *, undo: bool = False) -> None:
        """Let the lock go; with `undo`, also remove its file if `acquire` made it (the
        registry turned out not to be one: a path that was refused is left untouched).
        Otherwise the file stays: removing it could let two later sessions lock two files."""
        if self._file is not None:
            if undo and self._made:
                self.path.unlink(missing_ok=True)
            self._file.close()  # closing the file releases the lock
            self._file = None


def refuse_if_in_use(registry: Path) -> None:
    """Raise RegistryError when another session holds `registry` (checked, not kept)."""
    if lock_path(registry).exists():
        probe = SessionLock(registry)
        probe.acquire()
        probe.release()
