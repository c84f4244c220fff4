"""The coverage schedules strike what they aim at: every (kind x window) cell of a
configuration, read back from the histories as the campaign's coverage table reads it."""

from __future__ import annotations

import pytest

from chaos import run_and_save
from chaos.analysis.coverage import coverage_summary, windows
from chaos.campaign import RUN_TIMEOUT, plan_campaign
from chaos.campaign.cover import coverage_schedules
from chaos.spec import DEFAULT_KINDS
from tests.campaign.kit import RESILIENCE_GRID, WORKLOAD


def test_each_kind_gets_every_window_in_three_schedules_of_two_faults():
    schedules = coverage_schedules(WORKLOAD.task_ids(), WORKLOAD.n_steps, DEFAULT_KINDS)
    assert len(schedules) == 3 * len(DEFAULT_KINDS)
    assert {len(s.faults) for s in schedules} == {2}
    assert len(windows(WORKLOAD.n_steps)) == 6
    # A scheduler kill has no worker to aim at: no coverage schedules.
    assert coverage_schedules(WORKLOAD.task_ids(), 2, ["scheduler-kill"]) == []


def test_a_plan_says_whether_its_schedules_aim_at_every_cell():
    # The aimed_coverage gate holds only campaigns that aimed a fault at every cell.
    assert plan_campaign("ci", schedules=0).aimed
    assert not plan_campaign("ci", schedules=0, cover=False).aimed
    assert not plan_campaign("nightly", schedules=0).aimed
    assert plan_campaign("nightly", schedules=0, cover=True).aimed
    assert not plan_campaign("ci", schedules=[]).aimed  # schedules given: none added


@pytest.mark.parametrize("kind", ["sigkill", "retire"])
def test_the_coverage_schedules_hit_every_window_of_their_kind(kind, harness, tmp_path):
    configuration = next(c for c in RESILIENCE_GRID if c.slug == "resilience-r2-memory-scatter")
    histories = []
    for i, schedule in enumerate(coverage_schedules(WORKLOAD.task_ids(), WORKLOAD.n_steps,
                                                    [kind])):
        saved = run_and_save(schedule, configuration, WORKLOAD, harness, tmp_path / str(i),
                             timeout=RUN_TIMEOUT)
        assert saved.verdict.valid, saved.verdict
        histories.append(saved.record.history)
    coverage = coverage_summary(histories, kinds=[kind])
    assert coverage["missing"] == [], coverage["hits"]
    assert coverage["covered"] == coverage["cells"] == 6
