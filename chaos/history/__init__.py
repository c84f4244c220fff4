"""The history format: one append-only JSON-lines file per run (docs/history.md).

    writer = HistoryWriter("runs/1/history.jsonl"); writer.emit("deliver", ...)
    events = read_history("runs/1")

The history is the single source of truth: the checker, the analysis and the report
are pure functions of it. `replay_command` is the one-line command that runs a saved
run again, and `watched_tasks` the tasks its faults struck (a replay strikes them
again); `versions` and `git_commit` are what `run-start` records of its provenance.
"""

from chaos.history.format import (
    HISTORY_FILE,
    HISTORY_VERSION,
    READABLE_HISTORY_VERSIONS,
    RUN_SUMMARY_FILE,
    SCHEDULE_FILE,
    WorkerProcess,
    same_process,
)
from chaos.history.metadata import git_commit, versions
from chaos.history.reader import read_history
from chaos.history.replay import (
    DEFAULT_REFILL_DELAY,
    DEFAULT_TIMEOUT,
    DEFAULT_WORKERS,
    replay_command,
    watched_tasks,
)
from chaos.history.upgrade import history_version, upgraded
from chaos.history.writer import HistoryWriter

__all__ = [
    "DEFAULT_REFILL_DELAY",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WORKERS",
    "HISTORY_FILE",
    "HISTORY_VERSION",
    "READABLE_HISTORY_VERSIONS",
    "RUN_SUMMARY_FILE",
    "SCHEDULE_FILE",
    "HistoryWriter",
    "WorkerProcess",
    "git_commit",
    "history_version",
    "read_history",
    "replay_command",
    "same_process",
    "upgraded",
    "versions",
    "watched_tasks",
]
