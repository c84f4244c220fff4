"""A small Hypothesis campaign over generated schedules (slow: run with `pytest -m slow`)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from chaos import run_schedule
from chaos.spec.strategies import fault_schedules
from tests.chaos.conftest import small_workload

WORKLOAD = small_workload()


@pytest.mark.slow
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(schedule=fault_schedules(task_ids=WORKLOAD.task_ids(), n_steps=WORKLOAD.n_steps,
                                max_faults=3))
def test_the_library_with_a_registry_delivers_everything_exactly_once(harness, schedule):
    checker = pytest.importorskip("chaos.judge.checker")
    record = run_schedule(schedule, "resilience", {"task_registry": "memory"}, WORKLOAD, harness,
                          timeout=60)
    verdict = checker.check_history(record.history, WORKLOAD.oracle())
    assert verdict.valid, f"{verdict.summary()}\n{schedule.to_json()}"
