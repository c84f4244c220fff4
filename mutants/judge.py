"""Judge one mutant of the library (cosmic-ray's test command): exit 0 if it survives.

First the library's tests that run the mutated lines (real LocalClusters, and real `dask
scheduler` processes for the loss of a scheduler), then a short campaign: the ci
profile's regression schedules (the issue-11 hang, a lost input, a second delivery; not
its 18 coverage schedules, which would triple the time) on eight configurations that
exercise resubmission, replicas and deduplication.
Any failing test or failed gate kills the mutant.

Which tests run a line comes from the coverage map mutants/prepare.py writes (each
test's own coverage context, as mutmut does): a mutant is tested by the few tests that
can see it, not by all of them (about 2 minutes). A line with no test of its own (run
only while modules were imported, like a default, or only in a worker process, where
coverage does not look) is judged by every test, and so is every mutant without the map.

    python mutants/judge.py            # from the project's root
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every library test (about 2 minutes on 2 cores): a sample judged by five of its files
# let 11 of 16 mutants survive, most of them killed by a test elsewhere in the folder.
# The scheduler-loss tests (real `dask scheduler` processes, 35 s) are the only ones that
# see the run loop take a new scheduler back: without them `link == "back"` -> `<` lived.
FAST_TESTS = ["tests/resilience", "tests/checker/test_landing.py",
              "tests/deploy/test_scheduler_loss.py"]
GRID = "replicas=0,2;registry=none,memory;scatter=on;timeout=none,0.5"
TIMEOUT = 540  # seconds for each part; cosmic-ray's own timeout is above both
TEST_TIMEOUT = 60  # seconds per test: the slowest takes 9 (`--durations`); a mutant that hangs one
# is killed, and waiting out the suite's 300 s bound made such a mutant cost 5 minutes
COVERAGE_MAP = ROOT / "build" / "mutants-coverage.json"  # written by mutants/prepare.py
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? ", re.MULTILINE)


def main() -> int:
    tests = tests_for(mutated_lines())
    if tests:
        run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                              "no:cacheprovider", "-m", "not slow",
                              f"--timeout={TEST_TIMEOUT}", *tests],
                             cwd=ROOT, timeout=TIMEOUT, check=False)
        if run.returncode != 0:
            return 1
    with tempfile.TemporaryDirectory(prefix="mutant-campaign-") as scratch:
        campaign = subprocess.run(
            [sys.executable, "-m", "chaos", "campaign", "--profile", "ci", "--targets",
             "resilience", "--grid", GRID, "--schedules", "0", "--no-cover",
             "--clean-runs", "0", "--timeout", "20", "--out", str(Path(scratch) / "campaign")],
            cwd=ROOT, timeout=TIMEOUT, check=False, capture_output=True, text=True)
    return 0 if campaign.returncode == 0 else 1


def mutated_lines(root: Path = ROOT) -> dict[str, set[int]] | None:
    """The lines cosmic-ray changed (it mutates the working tree in place), by file, as
    numbered before the change; None when git cannot say."""
    diff = subprocess.run(["git", "diff", "-U0", "--", "resilience"], cwd=root,
                          capture_output=True, text=True, check=False)
    if diff.returncode != 0:
        return None
    lines: dict[str, set[int]] = {}
    for part in diff.stdout.split("diff --git ")[1:]:
        name = part.split("\n", 1)[0].split(" b/", 1)[-1]
        for start, count in HUNK.findall(part):
            first, n = int(start), 1 if count == "" else int(count)
            lines.setdefault(name, set()).update(range(first, first + max(n, 1)))
    return lines


def tests_for(lines: dict[str, set[int]] | None, coverage_map: Path = COVERAGE_MAP
              ) -> list[str]:
    """The tests that run any of `lines`; every fast test when unsure: no map or no diff,
    a line run only at import, or a line the test process never ran (it may run in a
    worker process, where coverage does not look)."""
    if not lines or not coverage_map.exists():
        return FAST_TESTS
    runs = json.loads(coverage_map.read_text(encoding="utf-8"))
    tests: set[str] = set()
    for name, numbers in lines.items():
        for number in numbers:
            contexts = runs.get(name, {}).get(str(number))
            if not contexts:
                return FAST_TESTS
            tests.update(contexts)
    return sorted(tests)


def pytest_twice(args: list[str], cache: Path, measure: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, cwd: Path = ROOT) -> str:
    """Run pytest with `args` (and `measure`, e.g. coverage options, on this first run
    only); when tests fail, run those once more (pytest's --lf, from the cache folder
    `cache`, made afresh). Returns 'passed', 'flaky' (they passed the second time) or
    'failed'. Run on the unmutated library before judging: a test failing there would
    kill every mutant it judges, and a flaky one some."""
    shutil.rmtree(cache, ignore_errors=True)
    command = [sys.executable, "-m", "pytest", "-q", "-o", f"cache_dir={cache}", *args]
    if subprocess.run([*command, *measure], cwd=cwd, env=env, check=False).returncode == 0:
        return "passed"
    again = [*command, "--last-failed", "--last-failed-no-failures", "none"]
    passed = subprocess.run(again, cwd=cwd, env=env, check=False).returncode == 0
    return "flaky" if passed else "failed"


if __name__ == "__main__":
    sys.exit(main())
