"""Prepare a cosmic-ray session of `nox -s mutants`: generate the mutants of the recovery
paths (mutants/cosmic-ray.toml), drop the operators it excludes, and optionally keep
only some modules and a seeded sample, marking the others skipped.

    python mutants/prepare.py build/mutants.sqlite [--modules recovery.py,jobs.py]
                              [--sample N] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult

CONFIG = Path(__file__).with_name("cosmic-ray.toml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("session")
    parser.add_argument("--modules", help="comma-separated file names under resilience/")
    parser.add_argument("--sample", type=int, help="judge at most this many mutants")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    session = Path(args.session)
    session.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cosmic-ray", "init", str(CONFIG), str(session), "--force"], check=True)
    subprocess.run(["cr-filter-operators", str(session), str(CONFIG)], check=True)
    wanted = set(args.modules.split(",")) if args.modules else None
    with use_db(str(session), WorkDB.Mode.open) as db:
        pending = sorted(db.pending_work_items, key=lambda item: item.job_id)
        keep = [item for item in pending
                if wanted is None or item.mutations[0].module_path.name in wanted]
        if args.sample is not None and len(keep) > args.sample:
            keep = random.Random(args.seed).sample(keep, args.sample)
        kept = {item.job_id for item in keep}
        skipped = [item.job_id for item in pending if item.job_id not in kept]
        if skipped:
            db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    print(f"{len(kept)} mutant(s) to judge ({len(skipped)} left out by --modules/--sample)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
