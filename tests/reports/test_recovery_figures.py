"""Recovery percentiles: one definition for summary.json, the recovery gate and the report."""

from __future__ import annotations

import math

import pandas as pd

from chaos.analysis import recovery_figures


def frame(to_deliver: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"to_resubmit": [0.05] * len(to_deliver), "to_deliver": to_deliver})


def test_percentiles_are_of_the_delivered_steps_and_the_never_delivered_are_counted():
    # 100 disturbed steps delivered in 0.01 .. 1.00 s, and two never delivered.
    figures = recovery_figures(frame([i / 100 for i in range(1, 101)] + [math.nan] * 2))

    assert figures["disturbed_steps"] == 102
    assert figures["never_delivered"] == 2
    assert figures["to_deliver_p50"] == figures["to_deliver_median"] == 0.505
    assert figures["to_deliver_p90"] == 0.901
    assert figures["to_deliver_p99"] == 0.9901
    assert figures["to_deliver_max"] == 1.0
    assert figures["to_resubmit_median"] == 0.05


def test_one_stalled_recovery_shows_in_the_tail_not_the_median():
    figures = recovery_figures(frame([0.2] * 99 + [30.2]))

    assert figures["to_deliver_p50"] == 0.2
    assert figures["to_deliver_max"] == 30.2
    assert 0.2 < figures["to_deliver_p99"] < 30.2


def test_nothing_delivered_gives_no_percentile():
    figures = recovery_figures(frame([math.nan]))

    assert figures["to_deliver_p50"] is None and figures["to_deliver_max"] is None
    assert figures["never_delivered"] == 1
