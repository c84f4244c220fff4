"""The one-line command that replays a saved run: `python -m chaos replay DIR/schedule.json`.

Kept apart (and free of heavy imports) because the campaign writes it into each run's
summary.json and the HTML report prints it for every failing run: both must agree.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

SCHEDULE_FILE = "schedule.json"
# What `python -m chaos replay` assumes unless told otherwise.
DEFAULT_WORKERS = 3
DEFAULT_TIMEOUT = 60.0


def replay_command(folder: str | os.PathLike[str], *, workers: int | None = None,
                   timeout: float | None = None) -> str:
    """Replay the run saved in `folder` on a new LocalCluster like the one it ran on.

    The replay reads target, configuration and workload from `folder/summary.json`;
    `workers` and `timeout` are added when they differ from the replay's defaults.
    """
    path = Path(folder)
    command = ["python", "-m", "chaos", "replay", str(path / SCHEDULE_FILE),
               "--out", f"{path}-replay"]
    if workers is not None and workers != DEFAULT_WORKERS:
        command += ["--workers", str(workers)]
    if timeout is not None and float(timeout) != DEFAULT_TIMEOUT:
        command += ["--timeout", f"{float(timeout):g}"]
    return shlex.join(command)
