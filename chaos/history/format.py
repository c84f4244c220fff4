"""The names and version of the files a run leaves behind (format: docs/history.md)."""

from __future__ import annotations

# Version 2: the fault kind `sigterm` is `nanny-close`; kinds `preempt`, `scheduler-kill`.
HISTORY_VERSION = 2
READABLE_HISTORY_VERSIONS = (1, 2)  # older ones are upgraded on read (upgrade.py)
HISTORY_FILE = "history.jsonl"  # the run's events, one JSON object per line
SCHEDULE_FILE = "schedule.json"  # the FaultSchedule the run injected
RUN_SUMMARY_FILE = "summary.json"  # the recipe and verdict `python -m chaos replay` reads


WorkerProcess = tuple[str | None, int | None]  # (address, pid): one worker process


def same_process(one: WorkerProcess, other: WorkerProcess) -> bool:
    """Two (worker address, pid) pairs name one worker process. The address alone does
    not: a nanny may restart its worker at the same address (a fixed port) as a new
    process. A pid the history did not record matches on the address."""
    (address, pid), (other_address, other_pid) = one, other
    return address == other_address and (None in (pid, other_pid) or pid == other_pid)
