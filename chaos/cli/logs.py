"""Keeping Dask's logging off the terminal while the harness works on purpose.

Faults make Dask log errors by design: on a terminal they would tear the progress line
and bury the verdicts.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

WORKER_LOG_LEVEL = "DASK_LOGGING__DISTRIBUTED"


@contextlib.contextmanager
def quiet_dask() -> Iterator[None]:
    """Filter Dask's own handlers to critical messages (LocalCluster resets the
    "distributed" logger's level when it closes, so a level alone would not hold), and
    worker processes to errors: a closing worker logs its lost connections at INFO."""
    logger = logging.getLogger("distributed")
    logger.setLevel(logging.CRITICAL)
    for handler in logger.handlers:
        handler.addFilter(_critical_only)
    with _worker_log_level("error"):
        yield


def _critical_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.CRITICAL


@contextlib.contextmanager
def _worker_log_level(level: str) -> Iterator[None]:
    """Worker processes read WORKER_LOG_LEVEL when they import distributed."""
    saved = os.environ.get(WORKER_LOG_LEVEL)
    os.environ[WORKER_LOG_LEVEL] = level
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(WORKER_LOG_LEVEL, None)
        else:
            os.environ[WORKER_LOG_LEVEL] = saved


@contextlib.contextmanager
def logs_to(path: Path, *, enabled: bool) -> Iterator[None]:
    """Send Dask's and the library's logging to `path` rather than the terminal, where it
    would tear the progress line: faults make Dask log errors by design."""
    if not enabled:
        yield
        return
    handler = _LogFile(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in ("distributed", "resilience", "chaos")]
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    root = logging.getLogger()
    root_handlers = root.handlers[:]
    # Worker processes log to the terminal, and a closing worker undoes `silence_logs`
    # before its last messages.
    with _worker_log_level("error"):
        try:
            for logger in loggers:
                logger.handlers = [handler]
                # The library's INFO lines are few, and say why a run recovered as it
                # did (copies late, a worker silent, inputs placed again).
                logger.setLevel(logging.INFO if logger.name == "resilience" else logging.WARNING)
                logger.propagate = False
            root.handlers = [handler]
            yield
        finally:
            for logger, handlers, level, propagate in saved:
                logger.handlers, logger.propagate = handlers, propagate
                logger.setLevel(level)
            root.handlers = root_handlers
            handler.close()


class _LogFile(logging.Handler):
    """Appends records to a file. Not a StreamHandler on purpose: LocalCluster's
    `silence_logs` re-levels every StreamHandler of the "distributed" logger."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = path.open("a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._file.write(self.format(record) + "\n")
            self._file.flush()
        except Exception:  # logging must never break the campaign
            self.handleError(record)

    def close(self) -> None:
        self._file.close()
        super().close()
