"""Judge one mutant of the library (cosmic-ray's test command): exit 0 if it survives.

First the library's tests (real LocalClusters, about 2 minutes on 2 cores), then a
short campaign: the ci profile's fixed schedules (the issue-11 hang, a lost input, a
second delivery) on four configurations that exercise resubmission, replicas and
deduplication. Any failing test or failed gate kills the mutant.

    python mutants/judge.py            # from the project's root
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every library test (about 2 minutes on 2 cores): a sample judged by five of its files
# let 11 of 16 mutants survive, most of them killed by a test elsewhere in the folder.
FAST_TESTS = ["tests/resilience", "tests/checker/test_landing.py"]
GRID = "replicas=0,2;registry=none,memory;scatter=on;timeout=none,0.5"
TIMEOUT = 540  # seconds for each part; cosmic-ray's own timeout is above both


def main() -> int:
    tests = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                            "-m", "not slow", *FAST_TESTS], cwd=ROOT, timeout=TIMEOUT,
                           check=False)
    if tests.returncode != 0:
        return 1
    with tempfile.TemporaryDirectory(prefix="mutant-campaign-") as scratch:
        campaign = subprocess.run(
            [sys.executable, "-m", "chaos", "campaign", "--profile", "ci", "--targets",
             "resilience", "--grid", GRID, "--schedules", "0", "--clean-runs", "0",
             "--timeout", "20", "--out", str(Path(scratch) / "campaign")],
            cwd=ROOT, timeout=TIMEOUT, check=False, capture_output=True, text=True)
    return 0 if campaign.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
