"""`python -m chaos replays DIR --times N`: replay every failing run saved under DIR
(a campaign folder, or any folder of run folders) N times each, on one new LocalCluster,
and print the share of replays that match their original: same verdict outcome, same
violations by class, same fault points. Writes DIR/replays.json. Exit status 0 when
every replay matched, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chaos.campaign import RunReplays, failing_run_folders, replay_runs
from chaos.errors import ChaosError
from chaos.harness import ChaosCluster
from chaos.history import DEFAULT_WORKERS


def add_replays_command(commands: Any) -> None:
    sub = commands.add_parser("replays", help="replay a folder of failing runs N times each "
                              "and print the share that match")
    sub.add_argument("folder", help="a campaign folder (its runs/), or any folder of runs")
    sub.add_argument("--times", type=int, default=10, help="replays per run (default 10)")
    sub.add_argument("--limit", type=int, help="replay at most this many runs")
    sub.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    sub.add_argument("--keep", help="keep the replays' run folders here (default: dropped)")
    sub.add_argument("--free", action="store_true",
                     help="replay without keeping to the original's order of events (only "
                          "the fault points are pinned): how often a failure recurs by itself")
    sub.add_argument("--dask-logs", action="store_true", help="show Dask's own logging")
    sub.set_defaults(command=replays_main)


def replays_main(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    runs = failing_run_folders(folder)
    if args.limit is not None:
        runs = runs[: args.limit]
    if not runs:
        raise ChaosError(f"{folder}: no failing run (a folder with history.jsonl, "
                         "schedule.json and a summary.json that says not valid) to replay.")
    print(f"replaying {len(runs)} failing run(s) {args.times} time(s) each", flush=True)
    quiet: dict[str, Any] = {} if args.dask_logs else {"silence_logs": logging.CRITICAL}
    with ChaosCluster.local(args.workers, **quiet) as cluster, \
            tempfile.TemporaryDirectory(prefix="chaos-replays-") as scratch:
        report = replay_runs(runs, cluster, args.times, Path(args.keep or scratch),
                             lockstep=not args.free, on_run=_Progress(len(runs)))
    print(report.render())
    (folder / "replays.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n",
                                       encoding="utf-8")
    return 0 if report.share == 1.0 else 1


class _Progress:
    """A line per run as its replays finish (each takes tens of seconds): which run,
    how its replays went, and about how long the rest will take."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()

    def __call__(self, run: RunReplays) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        print(f"[{self.done}/{self.total}] {run.describe()} · {elapsed / 60:.1f} min so far, "
              f"about {left / 60:.1f} min left", file=sys.stderr, flush=True)
