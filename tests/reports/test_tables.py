"""Tables from hand-written histories: which work was wasted, how fast recovery was."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import pytest

from chaos.analysis import (
    check_runs,
    execution_table,
    recovery_table,
    run_table,
    summarise_campaign,
)
from chaos.analysis.recovery import recovery_figures
from chaos.judge import check_history
from reports import fault_table, hold_table, verdict_matrix
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


def test_the_used_attempt_is_the_one_the_library_accepted_first():
    """Issue 11: the timeline marks the attempt whose result the library used (its
    step-completed names it), not the last one to finish."""
    history = HistoryBuilder(task_registry="memory", run_id="first-accepted")
    history.submit("a")
    first = history.invoke("a", worker=0)
    second = history.invoke("a", worker=1, attempt=2)
    history.outcome(first, seconds=0.1)
    history.emit("step-completed", task_id="a", index=[], step=0, attempt=1,
                 key=history.events[2]["key"], n_outputs=1)
    history.deliver("a")
    history.outcome(second, seconds=0.4)  # a loser that finished late, never suppressed
    history.end()
    table = execution_table([history.events]).set_index("execution")
    assert bool(table.loc[first, "used"]) and not bool(table.loc[second, "used"])
    assert table.loc[second, "cpu"] == pytest.approx(0.4)


def test_wasted_work_is_worker_cpu_time_not_wall_time():
    history = HistoryBuilder(task_registry="memory", run_id="sleepy")
    history.submit("a")
    slow = history.invoke("a", worker=0)
    history.outcome(slow, "info")  # killed after a long, mostly idle wait
    history.events[-1]["time"] += 5.0
    history.emit("probe", execution=slow, step=0, fraction=0.5, cpu=0.01)
    history.clean_task("b")
    history.end()
    runs = check_runs([history.events], lambda start: one_output_each("b"))
    assert run_table(runs).loc[0, "wasted_seconds"] == pytest.approx(0.01)


def test_recovery_table_measures_from_the_kill_landing():
    history, times = kill_and_resubmit()
    [row] = recovery_table([history.events]).to_dict("records")
    assert (row["task_id"], row["step"]) == ("a", 0)
    assert row["to_resubmit"] == pytest.approx(times["resubmit"] - times["landed"])
    assert row["to_deliver"] == pytest.approx(times["deliver"] - times["landed"])
    assert 0 < row["to_reexecute"] < row["to_deliver"]


def fault_on_a(history: HistoryBuilder, kind: str) -> None:
    """Task a's one step starts on worker 0, and a fault of `kind` cuts it short."""
    history.submit("a")
    killed = history.invoke("a", worker=0)
    history.fault(worker=0, kind=kind)
    history.outcome(killed, "info")


def refilled_and_delivered(history: HistoryBuilder, after: float = 0.0) -> pd.DataFrame:
    """A worker joins; `after` seconds later a is resubmitted and delivered; the table."""
    history.emit("worker-added", worker="tcp://127.0.0.1:9999")
    history.wait(after)
    history.submit("a", attempt=2, reason="lost-input")
    history.execute("a", worker=1, attempt=2)
    history.deliver("a", attempts=2)
    history.end()
    return recovery_table([history.events])


def test_time_without_any_worker_is_counted_apart_from_the_recovery():
    # Issue 12: the nightly's slowest recoveries were schedules that removed every
    # worker: nothing can run until a nanny or the fleet brings one back (2-3 s here).
    history = HistoryBuilder(task_registry="memory", run_id="fleet-gone", workers=2)
    fault_on_a(history, "sigkill")
    history.emit("worker-removed", worker=history.workers[0])
    history.wait(0.5)
    history.emit("worker-removed", worker=history.workers[1])
    history.wait(2.0)  # no worker at all
    table = refilled_and_delivered(history)
    [row] = table.to_dict("records")

    assert row["without_workers"] == pytest.approx(2.0, abs=0.01)
    assert row["to_deliver"] > 2.5
    figures = recovery_figures(table)
    assert figures["to_deliver_max"] == pytest.approx(row["to_deliver"], abs=0.001)
    assert figures["working_max"] == pytest.approx(row["to_deliver"] - 2.0, abs=0.01)


def test_time_when_the_only_workers_left_are_frozen_is_counted_apart_too():
    # Nightly --seed 777, s035: a freeze of the last worker landed just before a retire
    # took the other; with no later fault and a worker still registered, the retire's
    # recovery (1.4 s) counted as the library's, although no worker could run until the
    # thaw 1 s later. The freeze still on also counts as another fault in its way.
    history = HistoryBuilder(task_registry="memory", run_id="frozen-fleet", workers=2)
    history.submit("a")
    history.fault(worker=1, kind="freeze", fault_id="f0")  # the last worker stops
    retired = history.invoke("a", worker=0)
    history.fault(worker=0, kind="retire", fault_id="f1")
    history.outcome(retired, "info")
    history.emit("worker-removed", worker=history.workers[0])
    history.wait(1.0)
    history.emit("fault-ended", fault_id="f0", worker=history.workers[1], how="sigcont")
    history.submit("a", attempt=2, reason="lost-input")
    history.execute("a", worker=1, attempt=2)
    history.deliver("a", attempts=2)
    history.end()

    [row] = recovery_table([history.events]).to_dict("records")
    assert row["fault_id"] == "f1" and row["other_faults"] == 1
    assert row["without_workers"] == pytest.approx(1.0, abs=0.02)
    assert row["to_deliver"] - row["without_workers"] < 0.2


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


@dataclass(frozen=True)
class Summarised:
    """What `summarise_campaign` reads of a run."""

    run_id: str
    slug: str
    history: tuple
    verdict: object
    target: str = "resilience"
    settings: tuple = ()
    clean: bool = False
    makespan: float = 1.0
    folder: None = None

    @classmethod
    def of(cls, history: HistoryBuilder, slug: str, **fields: object) -> Summarised:
        events = tuple(history.events)
        return cls(events[0]["run_id"], slug, events,
                   check_history(events, one_output_each("a")), **fields)


def test_a_step_that_never_recovered_counts_in_the_worst_recovery():
    """Issue 11: recovery figures counted only steps that recovered (max() skipped the
    NaN of one that never did); such a step was waited for until the run ended."""
    history = HistoryBuilder(task_registry="memory", run_id="stuck")
    history.submit("a")
    execution = history.invoke("a", worker=0)
    history.fault(worker=0)
    history.outcome(execution, "info")
    history.wait(40.0)  # nothing recovers it
    history.end("hung")

    run = Summarised.of(history, "stuck-config", makespan=40.0)
    recovery = summarise_campaign([run], {})["configurations"]["stuck-config"]["recovery"]
    assert recovery["never_recovered"] == 1
    assert recovery["to_deliver_max"] >= 40.0


def test_configurations_apart_only_in_step_timeout_keep_their_own_figures():
    """Found in the nightly: two configurations that differ only in step_timeout shared a
    label, so one got both's recovery figures and the other none."""
    runs = []
    for slug, extra in (("plain", {}), ("timeout", {"step_timeout": 0.5})):
        history = HistoryBuilder(task_registry="memory", run_id=slug, **extra)
        history.recovered_task("a", outage=0.0)
        history.end()
        runs.append(Summarised.of(history, slug))

    configurations = summarise_campaign(runs, {})["configurations"]
    assert configurations["plain"]["recovery"]["disturbed_steps"] == 1
    assert configurations["timeout"]["recovery"]["disturbed_steps"] == 1


def test_the_scheduler_s_loss_is_recovered_from_apart_from_a_worker_s():
    """A scheduler kill's recovery includes its outage (a new scheduler, every worker and
    the client reconnecting); pooled with worker faults it would hide a slow recovery
    from a worker's loss under a larger, expected figure."""
    runs = []
    for number, (kind, outage) in enumerate((("sigkill", 0.3), ("scheduler-kill", 4.0))):
        history = HistoryBuilder(task_registry="disk", run_id=f"s{number}")
        history.recovered_task("a", kind, outage)
        history.end()
        runs.append(Summarised.of(history, "disk"))

    [figures] = summarise_campaign(runs, {})["configurations"].values()
    assert figures["recovery"]["disturbed_steps"] == 1
    assert figures["recovery"]["to_deliver_max"] < 1.0
    assert figures["scheduler_recovery"]["disturbed_steps"] == 1
    assert figures["scheduler_recovery"]["to_deliver_max"] >= 4.0


def test_a_lost_scheduler_s_outage_is_counted_apart_until_a_worker_registers_again():
    # A dead scheduler sends no worker-removed: its successor starts with no worker
    # until they register again (10 s on a slow host's deploy campaign, 4 s on a fast
    # one). The library's share is what comes after.
    history = HistoryBuilder(task_registry="disk", run_id="scheduler-gone", workers=2)
    fault_on_a(history, "scheduler-kill")
    history.wait(3.0)  # no scheduler, then one without workers
    table = refilled_and_delivered(history, after=0.5)
    [row] = table.to_dict("records")
    assert row["without_workers"] == pytest.approx(3.0, abs=0.1)
    assert recovery_figures(table)["working_max"] == pytest.approx(
        row["to_deliver"] - row["without_workers"], abs=0.001)
    assert recovery_figures(table)["working_max"] < 1.0


def test_the_summary_pools_each_target_s_recovery_over_its_configurations():
    runs = []
    for number, (registry, outage) in enumerate((("disk", 0.3), ("memory", 0.9))):
        history = HistoryBuilder(task_registry=registry, run_id=f"s{number}")
        history.recovered_task("a", "sigkill", outage)
        history.end()
        runs.append(Summarised.of(history, registry))
    summary = summarise_campaign(runs, {})
    each = [c["recovery"] for c in summary["configurations"].values()]
    assert [figures["disturbed_steps"] for figures in each] == [1, 1]
    pooled = summary["totals"]["recovery_by_target"]
    assert list(pooled) == ["resilience"]
    assert pooled["resilience"]["disturbed_steps"] == 2
    assert pooled["resilience"]["to_deliver_max"] == max(f["to_deliver_max"] for f in each)
    assert pooled["resilience"]["to_deliver_p50"] == pytest.approx(
        sum(f["to_deliver_max"] for f in each) / 2)


def test_a_recovery_that_waited_out_a_later_fault_is_told_apart_from_one_alone():
    """Issue 12: the slowest recoveries of a nightly also waited out a later fault of
    the run (a 1 s freeze of the worker their next step went to, a second retire). Each
    row counts the faults that landed before its delivery; `alone_p99` leaves them out."""
    history = HistoryBuilder(task_registry="memory", workers=3)
    history.submit("a")
    cut = history.invoke("a", worker=0)
    history.fault(worker=0, fault_id="f0")
    history.outcome(cut, "info")
    history.wait(0.2)
    history.fault(worker=1, kind="freeze", fault_id="f1")  # lands while `a` recovers
    history.wait(0.9)
    history.submit("a", attempt=2, reason="resubmitted")
    history.execute("a", worker=2, attempt=2)
    history.deliver("a")
    history.emit("fault-ended", fault_id="f1", worker=history.workers[1], how="sigcont")
    history.clean_task("b", worker=2)
    history.submit("c")
    cut = history.invoke("c", worker=2)
    history.fault(worker=2, fault_id="f2")
    history.outcome(cut, "info")
    history.wait(0.2)
    history.submit("c", attempt=2, reason="resubmitted")
    history.execute("c", worker=1, attempt=2)
    history.deliver("c")
    history.fault(worker=0, kind="freeze", fault_id="f3")  # never ends: a stopped worker
    history.clean_task("d", worker=2)
    history.submit("e")
    cut = history.invoke("e", worker=2)
    history.fault(worker=2, fault_id="f4")
    history.outcome(cut, "info")
    history.submit("e", attempt=2, reason="resubmitted")
    history.execute("e", worker=1, attempt=2)
    history.deliver("e")
    history.end()

    rows = recovery_table([history.events]).set_index("task_id")
    assert rows.loc["a", "other_faults"] == 1 and rows.loc["c", "other_faults"] == 0
    assert rows.loc["e", "other_faults"] == 1  # the earlier freeze f3 still on
    figures = recovery_figures(rows)
    assert figures["to_deliver_max"] > 1.0
    assert figures["alone_steps"] == 1
    assert figures["alone_p99"] == pytest.approx(rows.loc["c", "to_deliver"], abs=1e-3)
    assert figures["isolated_steps"] == 1


@pytest.mark.parametrize("refilled", [False, True])
def test_an_earlier_loss_not_yet_replaced_weighs_on_a_later_faults_recovery(refilled):
    """Nightly seed 4848: a kill recovered in 1.3 s on the one worker two earlier faults
    had left; the fleet, not the library, was short. Once the lost worker is replaced,
    the earlier fault weighs on nothing."""
    history = HistoryBuilder(task_registry="memory", workers=3)
    history.fault(worker=0, kind="retire", fault_id="f0")
    history.emit("worker-removed", worker=history.workers[0], expected=True)
    if refilled:
        history.emit("worker-added", worker="tcp://10.0.0.9:1")
    history.submit("a")
    cut = history.invoke("a", worker=1)
    history.fault(worker=1, fault_id="f1")
    history.outcome(cut, "info")
    history.submit("a", attempt=2, reason="resubmitted")
    history.execute("a", worker=2, attempt=2)
    history.deliver("a")
    history.end()

    [row] = recovery_table([history.events]).to_dict("records")
    assert row["fault_id"] == "f1"
    assert row["other_faults"] == (0 if refilled else 1)
    assert recovery_figures(pd.DataFrame([row]))["isolated_steps"] == (1 if refilled else 0)


def test_one_faults_recovery_with_workers_leaves_out_other_faults_and_an_empty_fleet():
    """Issue 12's gate: a recovery another fault landed in, and the time no worker was
    there at all, are the fleet's and the schedule's, not the library's."""
    rows = pd.DataFrame({
        "task_id": ["waited-out-a-freeze", "waited-for-a-refill", "quick"],
        "to_resubmit": [0.01, 0.01, 0.01],
        "to_deliver": [1.5, 1.4, 0.3],
        "without_workers": [0.0, 0.9, 0.0],
        "other_faults": [1, 0, 0],
        "kind": ["sigkill", "nanny-close", "exit"],
    })
    figures = recovery_figures(rows)
    assert figures["isolated_steps"] == 2
    assert recovery_figures(rows.assign(kind="freeze"))["isolated_steps"] == 0  # a pause
    assert figures["isolated_max"] == pytest.approx(0.5)
    assert 0.3 < figures["isolated_p99"] <= 0.5
    assert figures["to_deliver_max"] == pytest.approx(1.5)
