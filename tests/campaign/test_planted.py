"""Real broken libraries are caught by the `ci` campaign, each with the right violation
class (issue 11). Each is the real `resilience` package with one planted source change
(tests/campaign/planted.py), imported by the client and every worker of the campaign's
LocalCluster; the control is the same campaign against the real library.

The swapped-outputs bug shows in any run and takes seconds, so it runs in the default
suite; the others need the ci profile's reach schedules and are marked slow.
"""

from __future__ import annotations

import pytest

from tests.campaign.planted import (
    BY_NAME,
    PLANTED_BUGS,
    imported_by_workers,
    planted_library,
    run_ci_campaign,
)


def test_the_planted_copy_is_what_the_client_and_the_workers_import(tmp_path):
    folder = planted_library(BY_NAME["outputs-swapped"], tmp_path)
    where = imported_by_workers(folder)
    assert where["client"].startswith(str(tmp_path)), where
    assert where["worker"].startswith(str(tmp_path)), where


def caught(bug_name: str, tmp_path) -> None:
    bug = BY_NAME[bug_name]
    outcome = run_ci_campaign(bug, tmp_path)
    found = outcome.violations()
    assert outcome.returncode == 1, outcome.log[-2000:]
    assert bug.caught_as in found, (bug.name, found, outcome.log[-2000:])
    gate = outcome.gate(bug.gate)
    assert gate["status"] == "fail", (bug.name, gate)


def test_swapped_outputs_are_caught_as_corrupted(tmp_path):
    caught("outputs-swapped", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("bug", [b.name for b in PLANTED_BUGS if b.name != "outputs-swapped"])
def test_each_planted_bug_is_caught_with_its_violation_class(bug, tmp_path):
    caught(bug, tmp_path)


@pytest.mark.slow
def test_the_real_library_passes_the_same_campaign(tmp_path):
    outcome = run_ci_campaign(None, tmp_path)
    assert outcome.returncode == 0, outcome.log[-3000:]
    assert outcome.violations() == {}
