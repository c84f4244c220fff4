"""`python -m chaos`: the command line, the one place that ties the packages together.

    python -m chaos run ...        one fault schedule against one configuration
    python -m chaos replay DIR/schedule.json --out D2
    python -m chaos replays DIR --times 10   replay DIR's failing runs, print the share
    python -m chaos campaign       the main job: a campaign, its report and its gates
    python -m chaos bench          campaign speed in schedules per minute
    python -m chaos check-protocols MODULE:FUNC[,FUNC...] --tasks tasks.json   (chaos.testing)

Exit status: 0 valid / gates passed, 1 a violation or a failed gate, 2 a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from chaos.cli.bench import add_bench_command
from chaos.cli.campaign import add_campaign_command
from chaos.cli.logs import quiet_dask
from chaos.cli.replays import add_replays_command
from chaos.cli.run import add_run_commands
from chaos.errors import ChaosError
from chaos.testing.command import add_check_command


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    quiet = contextlib.nullcontext() if getattr(args, "dask_logs", False) else quiet_dask()
    try:
        with quiet:
            return int(args.command(args))
    except ChaosError as error:
        print(f"chaos: {error}", file=sys.stderr)
        return 2


def parser() -> argparse.ArgumentParser:
    """The `python -m chaos` parser, every subcommand included."""
    root = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0])
    commands = root.add_subparsers(required=True, metavar="COMMAND")
    add_run_commands(commands)
    add_replays_command(commands)
    add_campaign_command(commands)
    add_bench_command(commands)
    add_check_command(commands)
    return root


__all__ = ["main", "parser"]
