"""The simulator against closed forms of restart under Poisson failures, and Young/Daly.

One worker, one task: the simulator's mean makespan over many seeds must match
E[T] = (1/λ + D)(e^{λW} - 1) (restart from scratch, downtime D), and the k-step form
k(1/λ + D)(e^{λ(W/k + δ)} - 1) when each step carries a checkpoint of δ.
"""

from __future__ import annotations

import math
import statistics

import pytest

from experiments import (
    SimSpec,
    daly_step,
    expected_time_restart,
    expected_time_steps,
    simulate,
    young_step,
)
from experiments.closed_forms import best_step_count
from experiments.costs import RunCosts
from experiments.durations import Duration
from experiments.sim_spec import PreemptionSource

RUNS = 3000


def free_costs(checkpoint: float = 0.0) -> RunCosts:
    """Every cost zero but the checkpoint, which is exposed to failures like the work."""
    return RunCosts(startup=0, end_gap=0, dispatch=0, exec_overhead=checkpoint,
                    return_latency=0, placement=0, detection=0, resubmit=0, reschedule=0,
                    restart=0, notice_leave=0, steal_after=0)


def one_task(work: float, steps: int, rate: float, downtime: float) -> SimSpec:
    return SimSpec(workers=1, tasks=1, steps=steps, fanout=(1,) * steps, payload_bytes=0,
                   duration=Duration.constant(work / steps), duration_seed=0, copies=1,
                   registry="memory", max_attempts=10**9, scatter=True,
                   sources=(PreemptionSource("sudden", rate, 0.0, downtime),),
                   timeout=1e9)


def mean_makespan(spec: SimSpec, costs: RunCosts) -> tuple[float, float]:
    spans = [simulate(spec, costs, seed).makespan for seed in range(RUNS)]
    return statistics.fmean(spans), statistics.stdev(spans) / math.sqrt(RUNS)


@pytest.mark.parametrize(("work", "rate", "downtime"), [(1.0, 1.0, 0.5), (2.0, 0.3, 0.0)])
def test_restart_from_scratch_matches_the_closed_form(work, rate, downtime):
    expected = expected_time_restart(work, rate, downtime)
    mean, error = mean_makespan(one_task(work, 1, rate, downtime), free_costs())
    assert abs(mean - expected) < 4 * error + 0.01 * expected, (mean, expected, error)


def test_k_steps_with_a_checkpoint_match_the_closed_form():
    work, steps, rate, downtime, checkpoint = 2.0, 4, 1.0, 0.3, 0.1
    expected = expected_time_steps(work, steps, rate, downtime, checkpoint)
    mean, error = mean_makespan(one_task(work, steps, rate, downtime), free_costs(checkpoint))
    assert abs(mean - expected) < 4 * error + 0.01 * expected, (mean, expected, error)
    # and splitting pays: the unsplit chain takes longer
    assert expected_time_restart(work + checkpoint, rate, downtime) > expected


def test_the_closed_forms_agree_with_each_other():
    assert expected_time_steps(3.0, 1, 0.5, 0.2, 0.0) == pytest.approx(
        expected_time_restart(3.0, 0.5, 0.2))
    assert expected_time_restart(5.0, 1e-9, 1.0) == pytest.approx(5.0, rel=1e-6)
    assert expected_time_restart(5.0, 0.0, 1.0) == 5.0


@pytest.mark.parametrize(("checkpoint", "rate"), [(60.0, 1 / 36000), (10.0, 1 / 7200)])
def test_the_best_step_length_is_near_young_when_checkpoints_are_cheap(checkpoint, rate):
    work = 100 * 3600.0
    best = work / best_step_count(work, rate, 0.0, checkpoint, most=20000)
    assert best == pytest.approx(young_step(checkpoint, rate), rel=0.08)
    assert best == pytest.approx(daly_step(checkpoint, rate), rel=0.03)


def test_daly_corrects_young_when_checkpoints_are_dear():
    work, checkpoint, rate = 100 * 3600.0, 600.0, 1 / 1800  # δλ = 1/3
    best = work / best_step_count(work, rate, 0.0, checkpoint, most=20000)
    young, daly = young_step(checkpoint, rate), daly_step(checkpoint, rate)
    assert abs(daly - best) < abs(young - best) / 3, (best, young, daly)
    assert daly_step(4000.0, 1 / 1800) == 1800  # δ >= 2M: one MTBF
