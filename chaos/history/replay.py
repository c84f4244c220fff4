"""The one-line command that replays a saved run: `python -m chaos replay DIR/schedule.json`,
and what a replay reads from the run's history to strike where the original struck.

Kept apart (and free of heavy imports) because the campaign writes it into each run's
summary.json and the HTML report prints it for every failing run: both must agree.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chaos.history.format import SCHEDULE_FILE

# What `python -m chaos replay` assumes unless told otherwise.
DEFAULT_WORKERS = 3
DEFAULT_TIMEOUT = 60.0
DEFAULT_REFILL_DELAY = 1.0  # seconds before the harness replaces a worker gone for good


def replay_command(folder: str | os.PathLike[str], *, workers: int | None = None,
                   timeout: float | None = None,
                   refill_delay: float | None = DEFAULT_REFILL_DELAY) -> str:
    """Replay the run saved in `folder` on a new LocalCluster like the one it ran on.

    The replay reads target, configuration and workload from `folder/summary.json`;
    `workers`, `timeout` and `refill_delay` (None: never) are added when they differ
    from the replay's defaults.
    """
    path = Path(folder)
    command = ["python", "-m", "chaos", "replay", str(path / SCHEDULE_FILE),
               "--out", f"{path}-replay"]
    if workers is not None and workers != DEFAULT_WORKERS:
        command += ["--workers", str(workers)]
    if timeout is not None and float(timeout) != DEFAULT_TIMEOUT:
        command += ["--timeout", f"{float(timeout):g}"]
    if refill_delay != DEFAULT_REFILL_DELAY:
        command += ["--refill-delay", "never" if refill_delay is None else f"{refill_delay:g}"]
    return shlex.join(command)


def watched_tasks(history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The task each fault of a run struck, by fault id, as its fault event records it."""
    return {str(event["fault_id"]): event["trigger"]["task_id"] for event in history
            if event["type"] == "fault" and (event.get("trigger") or {}).get("task_id")
            is not None}
