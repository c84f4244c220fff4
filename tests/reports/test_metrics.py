"""Empirical CDFs and makespan overhead intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from chaos.analysis import ecdf, makespan_overhead


def test_ecdf_keeps_never_in_the_denominator():
    x, y = ecdf([0.3, np.nan, 0.1, 0.2])
    assert x.tolist() == [0.1, 0.2, 0.3]
    assert y.tolist() == [0.25, 0.5, 0.75]
    assert [a.size for a in ecdf([])] == [0, 0]


def runs(label: str, clean: list[float], faulty: list[float], outcome: str = "valid"):
    return pd.DataFrame(
        [{"label": label, "faults": 0, "makespan": m, "outcome": outcome} for m in clean]
        + [{"label": label, "faults": 2, "makespan": m, "outcome": outcome} for m in faulty]
    )


def test_bootstrap_interval_surrounds_the_ratio_of_medians():
    rng = np.random.default_rng(1)
    clean = list(rng.normal(10, 0.5, 12))
    faulty = list(rng.normal(13, 0.5, 12))
    [row] = makespan_overhead(runs("c", clean, faulty)).to_dict("records")
    assert row["method"] == "ratio of medians, bootstrap percentile interval"
    assert row["overhead"] == pytest.approx(np.median(faulty) / np.median(clean) - 1)
    assert row["low"] < row["overhead"] < row["high"]
    assert row["low"] > 0.2 and row["high"] < 0.4


def test_one_slow_fault_free_run_cannot_make_the_overhead_negative():
    """Issue 11: a mean over four fault-free runs gave -77 % when one was slow; the
    ratio of medians stays with the typical run."""
    [row] = makespan_overhead(runs("c", [10.0, 10.5, 9.8, 60.0],
                                   [12.0, 12.5, 11.8, 12.2])).to_dict("records")
    assert 0.1 < row["overhead"] < 0.3
    assert row["low"] <= row["overhead"] <= row["high"]


def test_too_few_runs_give_a_point_and_say_why_there_is_no_interval():
    table = makespan_overhead(pd.concat([
        runs("no-clean", [], [11.0, 12.0]),
        runs("one-faulty", [10.0, 10.0], [15.0]),
        runs("one-clean", [10.0], [11.0, 12.0, 13.0]),
    ]))
    rows = {row["label"]: row for row in table.to_dict("records")}
    assert rows["no-clean"]["method"] == "no fault-free run"
    assert math.isnan(rows["no-clean"]["overhead"])
    assert "no interval" in rows["one-faulty"]["method"]
    assert rows["one-faulty"]["overhead"] == pytest.approx(0.5)
    assert math.isnan(rows["one-faulty"]["low"])
    assert rows["one-clean"]["overhead"] == pytest.approx(0.2)


def test_hung_runs_are_left_out_of_the_makespan():
    table = makespan_overhead(pd.concat([
        runs("c", [10.0, 10.0], [12.0, 12.0]),
        runs("c", [], [600.0], outcome="hung"),
    ]))
    assert table.loc[0, "overhead"] == pytest.approx(0.2)


def test_a_run_whose_scheduled_faults_never_fired_is_no_baseline():
    table = pd.concat([runs("c", [10.0, 10.0], [12.0, 12.0]),
                       runs("c", [30.0], [])]).reset_index(drop=True)
    table["scheduled_faults"] = [0.0, 0.0, 2.0, 2.0, 1.0]  # the 30 s run had one scheduled
    assert makespan_overhead(table).loc[0, "overhead"] == pytest.approx(0.2)
