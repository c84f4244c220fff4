"""`python -m reports FOLDER [--out FILE]`: check every run under FOLDER and write its report.

`python -m reports --preview DIR` writes a report of simulated runs (no cluster), to see
what a report looks like.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from reports.campaign import build_campaign_report, report_from_folder, write_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path,
                        help="campaign or run folder holding history.jsonl files")
    parser.add_argument("--out", type=Path, default=None,
                        help="report file or folder (default: FOLDER/index.html)")
    parser.add_argument("--seed", type=int, default=None, help="the campaign's seed, to print")
    parser.add_argument("--preview", action="store_true",
                        help="write a preview of simulated runs into FOLDER instead")
    args = parser.parse_args(argv)
    if args.preview:
        from reports.preview import preview_runs

        html = build_campaign_report(preview_runs(), title="Report preview (simulated runs)")
        path = write_report(html, args.out or args.folder)
    else:
        try:
            path = report_from_folder(args.folder, out=args.out, campaign_seed=args.seed)
        except FileNotFoundError as error:
            print(error, file=sys.stderr)
            return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
