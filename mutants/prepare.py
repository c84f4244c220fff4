"""Prepare a cosmic-ray session of `nox -s mutants`: generate the mutants of the recovery
paths (mutants/cosmic-ray.toml), drop the operators it excludes, and optionally keep
only some modules and a seeded sample, marking the others skipped. Then run the fast
tests once under coverage, each test its own context, and write which tests run each
line of the library (build/mutants-coverage.json): mutants/judge.py runs only those.

    python mutants/prepare.py build/mutants.sqlite [--modules recovery.py,jobs.py]
                              [--sample N] [--seed 0]
    python mutants/prepare.py build/mutants.sqlite --again

`--again` keeps the last session and judges again only the mutants that survived it:
what one runs after writing tests for them. The library must be as it was then (its
commit is kept beside the session), or the mutants would not be those of the code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult
from judge import COVERAGE_MAP, FAST_TESTS, ROOT, pytest_twice

CONFIG = Path(__file__).with_name("cosmic-ray.toml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("session")
    parser.add_argument("--modules", help="comma-separated file names under resilience/")
    parser.add_argument("--sample", type=int, help="judge at most this many mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--again", action="store_true",
                        help="judge again only the survivors of the last session")
    args = parser.parse_args(argv)
    session = Path(args.session)
    if args.again:
        return judge_survivors_again(session)
    session.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cosmic-ray", "init", str(CONFIG), str(session), "--force"], check=True)
    _stamp(session).write_text(_git("rev-parse", "HEAD").stdout)
    subprocess.run(["cr-filter-operators", str(session), str(CONFIG)], check=True)
    wanted = set(args.modules.split(",")) if args.modules else None
    with use_db(str(session), WorkDB.Mode.open) as db:
        # job_ids are fresh uuids at every init: sort by what the mutant is, so that
        # --sample N --seed S draws the same mutants in every clone.
        pending = sorted(db.pending_work_items, key=_identity)
        keep = [item for item in pending
                if wanted is None or item.mutations[0].module_path.name in wanted]
        if args.sample is not None and len(keep) > args.sample:
            keep = random.Random(args.seed).sample(keep, args.sample)
        kept = {item.job_id for item in keep}
        skipped = [item.job_id for item in pending if item.job_id not in kept]
        if skipped:
            db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    print(f"{len(kept)} mutant(s) to judge ({len(skipped)} left out by --modules/--sample)")
    if kept:
        map_tests_to_lines()
    return 0


def judge_survivors_again(session: Path) -> int:
    """Forget the results of the session's survivors, so that `cosmic-ray exec` judges
    them again (with the tests written since), and map the tests to lines anew."""
    stamp = _stamp(session)
    if not session.exists() or not stamp.exists():
        sys.exit(f"--again: no earlier session at {session}; run without --again first.")
    commit = stamp.read_text().strip()
    if _git("diff", "--quiet", commit, "--", "resilience").returncode != 0:
        sys.exit(f"--again: resilience/ changed since the session's commit {commit[:10]}, "
                 "so its mutants are not mutants of this code; start a new session.")
    with use_db(str(session), WorkDB.Mode.open) as db:
        survivors = [item.job_id for item, result in db.completed_work_items
                     if result.worker_outcome == WorkerOutcome.NORMAL
                     and result.test_outcome == TestOutcome.SURVIVED]
    with sqlite3.connect(session) as raw:  # cosmic-ray's WorkDB cannot forget a result
        raw.executemany("DELETE FROM work_results WHERE job_id = ?",
                        [(job_id,) for job_id in survivors])
    print(f"{len(survivors)} survivor(s) of the last session to judge again")
    if survivors:
        map_tests_to_lines()
    return 0


def _stamp(session: Path) -> Path:
    return session.with_suffix(".commit")


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False)


def _identity(item: object) -> tuple[str, int, str, int]:
    mutation = item.mutations[0]  # type: ignore[attr-defined]
    return (mutation.module_path.as_posix(), mutation.start_pos[0], mutation.operator_name,
            mutation.occurrence)


def map_tests_to_lines() -> None:
    """Which tests run each line of resilience/ (pytest-cov's per-test contexts); lines
    run only at import have an empty list. Written to COVERAGE_MAP."""
    from coverage import CoverageData

    data_file = COVERAGE_MAP.with_suffix(".coverage")
    COVERAGE_MAP.unlink(missing_ok=True)  # a failed run must not leave an old map behind
    outcome = pytest_twice(["-m", "not slow", *FAST_TESTS], COVERAGE_MAP.parent / "mutants-pytest",
                           ("--cov=resilience", "--cov-context=test", "--cov-report="),
                           env={**os.environ, "COVERAGE_FILE": str(data_file)})
    if outcome == "failed":
        sys.exit("the fast tests fail on the unmutated library, twice (named above): they "
                 "would kill every mutant they judge. Fix them, then judge the mutants.")
    if outcome == "flaky":
        print("a test failed under coverage and passed when run again (named above): it "
              "may kill a mutant it should not, so read its kills with care", file=sys.stderr)
    data = CoverageData(str(data_file))
    data.read()
    runs: dict[str, dict[str, list[str]]] = {}
    for measured in data.measured_files():
        name = Path(measured).resolve().relative_to(ROOT).as_posix()
        by_line = data.contexts_by_lineno(measured)
        runs[name] = {str(line): sorted({c.split("|")[0] for c in contexts if c})
                      for line, contexts in by_line.items()}
    COVERAGE_MAP.write_text(json.dumps(runs), encoding="utf-8")
    print(f"coverage map: {sum(map(len, runs.values()))} lines of {len(runs)} modules -> "
          f"{COVERAGE_MAP.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
