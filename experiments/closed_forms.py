"""Closed forms of restart under Poisson failures: what the simulator must agree with.

One task of W seconds restarting from scratch under failures at rate λ, each costing a
downtime D, takes on average E[T] = (1/λ + D)(e^{λW} - 1). Split into k steps, each
ending in a checkpoint of cost δ (here: the registry write, scatter and fetch of a step
boundary), it takes k·(1/λ + D)(e^{λ(W/k + δ)} - 1). The step length minimising that is
close to Young's √(2δ/λ); Daly's higher-order form corrects it when δλ is not small.
"""

from __future__ import annotations

import math


def expected_time_restart(work: float, rate: float, downtime: float) -> float:
    """E[T] of `work` seconds restarting from scratch, failures at `rate` per second."""
    if rate <= 0:
        return work
    return (1.0 / rate + downtime) * math.expm1(rate * work)


def expected_time_steps(work: float, steps: int, rate: float, downtime: float,
                        checkpoint: float) -> float:
    """E[T] of `work` split into `steps` steps, each followed by a checkpoint of `checkpoint` s."""
    if rate <= 0:
        return work + steps * checkpoint
    return steps * (1.0 / rate + downtime) * math.expm1(rate * (work / steps + checkpoint))


def young_step(checkpoint: float, rate: float) -> float:
    """Young's optimal step length, √(2δ/λ)."""
    return math.sqrt(2.0 * checkpoint / rate)


def daly_step(checkpoint: float, rate: float) -> float:
    """Daly's (2006) higher-order optimum: √(2δM)·[1 + ⅓√(δ/2M) + ⅑·δ/2M] - δ for δ < 2M
    (M = 1/λ, the mean time between failures), else M."""
    mtbf = 1.0 / rate
    if checkpoint >= 2 * mtbf:
        return mtbf
    ratio = checkpoint / (2 * mtbf)
    return math.sqrt(2 * checkpoint * mtbf) * (1 + math.sqrt(ratio) / 3 + ratio / 9) - checkpoint


def best_step_count(work: float, rate: float, downtime: float, checkpoint: float,
                    most: int = 4096) -> int:
    """The k in 1..most minimising `expected_time_steps` (the exact optimum, for checks)."""
    return min(range(1, most + 1),
               key=lambda k: expected_time_steps(work, k, rate, downtime, checkpoint))
