"""Property: under any schedule Hypothesis draws, every configuration of the library does
what the expected-outcome model says it must (chaos.judge.rules): it delivers every output
exactly once when the model says must-deliver-all, fails only loudly otherwise, never
delivers twice or a wrong value, and never hangs.

A run counts only when the faults it drew landed: `run_judged` requires a *valid*
verdict, and a run whose scheduled faults did not all land is *inconclusive*, not valid
(chaos.judge.landing), so the property fails on it too; a role that cannot exist in a
configuration (an input holder with inline inputs) is counted as impossible instead.

One example is one real run on the shared LocalCluster. The number of examples per
configuration comes from the Hypothesis profile (conftest.py). A failure keeps the run
under build/failures/ and prints the schedule as JSON and its replay command.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings

from chaos import FaultSchedule
from chaos.spec.strategies import fault_schedules
from tests.campaign.kit import RESILIENCE_GRID, RUN_TIMEOUT, WORKLOAD, run_judged

SCHEDULES = fault_schedules(task_ids=WORKLOAD.task_ids(), n_steps=WORKLOAD.n_steps,
                            max_faults=3)

# Known regressions, pinned. `python -m chaos run --target resilience --replicas 2
# --registry disk --seed 59 --faults 3` hung the library (its run never ended).
SEED_59_HANG = FaultSchedule.generate(59, 3, task_ids=WORKLOAD.task_ids(),
                                      n_steps=WORKLOAD.n_steps)


# pytest-timeout's 300 s is for ordinary tests; a property's bound grows with the
# profile: every example (and the pinned one) may take a whole run timeout, and
# Hypothesis shrinks a failure for at most 5 minutes.
PROPERTY_TIMEOUT = (settings.default.max_examples + 1) * RUN_TIMEOUT + 300


@pytest.mark.timeout(PROPERTY_TIMEOUT)
@pytest.mark.parametrize("configuration", RESILIENCE_GRID, ids=lambda c: c.slug)
@given(schedule=SCHEDULES)
@example(schedule=SEED_59_HANG)
def test_every_configuration_meets_the_model(harness, configuration, schedule):
    run_judged(schedule, configuration, harness, name=f"property-{configuration.slug}")
