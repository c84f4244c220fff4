"""Tables from hand-written histories: which work was wasted, how fast recovery was."""

from __future__ import annotations

import math

import pytest

from reports import (
    check_runs,
    execution_table,
    fault_table,
    recovery_table,
    run_table,
    verdict_matrix,
)
from reports.tables import hold_table
from tests.checker.histories import HistoryBuilder, one_output_each


def kill_and_resubmit() -> tuple[HistoryBuilder, dict[str, float]]:
    """Task a is killed mid-step, resubmitted from the registry and delivered; task b
    runs twice and its second result is suppressed as a duplicate.
    """
    history = HistoryBuilder(task_registry="disk", run_id="kill-and-resubmit")
    times: dict[str, float] = {}
    history.submit("a")
    killed = history.invoke("a", worker=0)
    history.wait(0.2)
    history.fault(worker=0)
    times["landed"] = history.events[-1]["landed_at"]
    history.outcome(killed, "info")
    history.step_error("a")
    times["resubmit"] = history.clock
    history.submit("a", attempt=2, reason="lost-input")
    history.execute("a", worker=1, attempt=2)
    times["deliver"] = history.clock
    history.deliver("a", attempts=2)
    history.submit("b")
    first = history.invoke("b", worker=1)
    second = history.invoke("b", worker=1, attempt=2)
    history.outcome(first, seconds=0.3)
    history.outcome(second, seconds=0.1)
    history.deliver("b")
    history.suppressed("b", attempt=2)
    history.end()
    return history, times


def test_execution_table_marks_killed_and_suppressed_work_as_wasted():
    history, _ = kill_and_resubmit()
    table = execution_table([history.events])
    assert len(table) == 4
    wasted = table[~table["used"]]
    wasted_pairs = zip(wasted["task_id"], wasted["outcome"], strict=True)
    assert sorted(wasted_pairs) == [("a", "info"), ("b", "ok")]
    killed = table[table["outcome"] == "info"].iloc[0]
    # The killed bar ends where the fault landed, not when the harness noticed.
    start = history.events[0]["time"]
    assert killed["end"] == pytest.approx(history.events[3]["landed_at"] - start)
    assert set(table[table["used"]]["task_id"]) == {"a", "b"}


def test_recovery_table_measures_from_the_kill_landing():
    history, times = kill_and_resubmit()
    [row] = recovery_table([history.events]).to_dict("records")
    assert (row["task_id"], row["step"]) == ("a", 0)
    assert row["to_resubmit"] == pytest.approx(times["resubmit"] - times["landed"])
    assert row["to_deliver"] == pytest.approx(times["deliver"] - times["landed"])
    assert 0 < row["to_reexecute"] < row["to_deliver"]


def test_a_step_that_never_recovers_has_nan_latencies():
    history = HistoryBuilder("dask-raw", run_id="lost")
    history.submit("a")
    execution = history.invoke("a", worker=0)
    history.fault(worker=0)
    history.outcome(execution, "info")
    history.end()
    [row] = recovery_table([history.events]).to_dict("records")
    assert all(math.isnan(row[c]) for c in ("to_resubmit", "to_reexecute", "to_deliver"))


def test_fault_table_reports_time_to_notice():
    history = HistoryBuilder()
    history.fault(worker=1, noticed=0.25)
    history.fault(worker=0, noticed=None)
    table = fault_table([history.events])
    assert table["to_notice"].iloc[0] == pytest.approx(0.25 - 0.001)
    assert math.isnan(table["to_notice"].iloc[1])


def test_run_table_and_verdict_matrix_count_per_configuration():
    clean, _ = kill_and_resubmit()
    duplicated = HistoryBuilder(task_registry="disk", run_id="dup")
    duplicated.clean_task("a")
    duplicated.clean_task("b")
    duplicated.deliver("b")
    duplicated.end()
    raw = HistoryBuilder("dask-raw", run_id="raw")
    raw.fault(worker=0)
    raw.clean_task("a")
    raw.end()
    runs = check_runs([clean.events, duplicated.events, raw.events],
                      lambda start: one_output_each("a", "b"))
    table = run_table(runs)
    assert list(table["run_id"]) == ["kill-and-resubmit", "dup", "raw"]
    assert list(table["duplicated"]) == [0, 1, 0]
    assert list(table["lost"]) == [0, 0, 1]
    assert table.loc[0, "wasted_seconds"] > 0
    matrix = verdict_matrix(runs)
    assert list(matrix.index) == ["dask-raw r=0 reg=none scatter",
                                  "resilience r=0 reg=disk scatter"]
    assert matrix.loc["resilience r=0 reg=disk scatter", ["runs", "failing", "duplicated"]
                      ].tolist() == [2, 1, 1]
    assert matrix.loc["dask-raw r=0 reg=none scatter", "lost"] == 1


def test_runs_must_have_distinct_ids():
    one = HistoryBuilder(run_id="same")
    one.end()
    with pytest.raises(ValueError, match="distinct run_id"):
        check_runs([one.events, one.events], lambda start: {})


def test_hold_timeouts_become_spans_on_their_worker():
    history = HistoryBuilder()
    history.wait(12.0)
    history.emit("hold-timeout", execution="x1", waited=10.0, worker=history.workers[1])
    [row] = hold_table([history.events]).to_dict("records")
    assert row["worker"] == history.workers[1]
    assert row["end"] - row["start"] == pytest.approx(10.0)
    assert row["end"] == pytest.approx(history.events[-1]["time"] - history.events[0]["time"])
