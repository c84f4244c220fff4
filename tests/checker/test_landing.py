"""A run is valid only when its faults are shown to land (issue 11): a run with no
violation whose scheduled faults did not all land is *inconclusive*, with the evidence;
an input-holder role in an inline configuration is counted as impossible, not hidden."""

from __future__ import annotations

from typing import Any

import pytest

from chaos.analysis import GateThresholds, evaluate_gates
from chaos.judge import check_history
from tests.checker.histories import HistoryBuilder, one_output_each

SCHEDULED = {"faults": [{"id": "f0", "kind": "sigkill",
                         "trigger": {"type": "at-step", "step": 0, "task": "a"},
                         "target": {"role": "running"}}]}


def clean_run(**config) -> HistoryBuilder:
    history = HistoryBuilder(task_registry="memory", **config)
    history.events[0]["schedule"] = SCHEDULED
    history.clean_task("a")
    return history


def test_a_skipped_fault_makes_the_run_inconclusive_not_valid():
    history = clean_run()
    seq = history.emit("fault-skipped", fault_id="f0", kind="sigkill",
                       trigger={"type": "at-step", "step": 0}, target={"role": "running"},
                       reason="worker tcp://x had already left", cause="no-victim")
    history.end()

    verdict = check_history(history.events, one_output_each("a"))

    assert verdict.outcome == "inconclusive" and not verdict.valid and not verdict.failing
    [miss] = verdict.fault_misses
    assert (miss.fault_id, miss.cause, miss.seq) == ("f0", "skipped", seq)
    assert "faults that did not land: f0 (skipped)" in verdict.summary()


def test_a_trigger_never_reached_and_a_harness_error_are_inconclusive_too():
    history = clean_run()
    history.emit("harness-error", during="hit", error="RuntimeError: boom")
    history.emit("fault-skipped", fault_id="f0", kind="sigkill", trigger={"type": "at-step"},
                 target={"role": "running"}, reason="its trigger point was never reached in "
                 "this run", cause="not-reached")
    history.end()

    verdict = check_history(history.events, one_output_each("a"))

    assert verdict.outcome == "inconclusive"
    assert [m.cause for m in verdict.fault_misses] == ["harness-error", "not-reached"]


def test_a_fault_whose_landing_was_never_seen_is_unconfirmed():
    history = clean_run()
    history.emit("fault", fault_id="f0", kind="sigkill", trigger={"type": "at-step"},
                 worker=history.workers[0], pid=100, fired_at=history.clock, landed_at=None,
                 noticed_at=None, error="process 100 was already gone")
    history.end()

    verdict = check_history(history.events, one_output_each("a"))

    assert verdict.outcome == "inconclusive"
    assert [(m.cause, m.detail) for m in verdict.fault_misses] == [
        ("unconfirmed", "process 100 was already gone")]


def test_a_scheduled_fault_the_history_never_mentions_is_unaccounted():
    history = clean_run()
    history.end()

    verdict = check_history(history.events, one_output_each("a"))

    assert verdict.outcome == "inconclusive"
    assert [m.cause for m in verdict.fault_misses] == ["unaccounted"]


def test_an_input_holder_in_an_inline_configuration_is_counted_impossible():
    history = clean_run(scatter=False)
    history.emit("fault-skipped", fault_id="f0", kind="sigkill",
                 trigger={"type": "input-held", "step": 1}, target={"role": "replica-holder"},
                 reason="no live worker held the task's input", cause="no-victim")
    history.end()

    verdict = check_history(history.events, one_output_each("a"))

    assert verdict.outcome == "valid"
    assert [m.cause for m in verdict.fault_misses] == ["impossible"]


def test_a_violation_outranks_a_missing_fault():
    history = clean_run()
    history.emit("fault-skipped", fault_id="f0", kind="sigkill", trigger={}, target={},
                 reason="no worker", cause="no-victim")
    history.end()

    verdict = check_history(history.events, one_output_each("a", "b"))

    assert verdict.outcome == "invalid"


def test_the_inconclusive_share_is_gated():
    summary = {"campaign": {"runs": 4, "planned_runs": 4}, "configurations": {
        "resilience-x": {"target": "resilience", "inconclusive_share": 0.5,
                         "must_deliver_failing_runs": 0, "outcomes": {"hung": 0},
                         "violations": {k: {"count": 0, "runs": 0} for k in (
                             "lost", "duplicated", "unexpected", "corrupted",
                             "reported-failed")}}}}

    gates = evaluate_gates(summary, GateThresholds(max_inconclusive_share=0.1))

    [gate] = [g for g in gates.results if g.name == "inconclusive_share"]
    assert gate.status == "fail" and gate.measured == 0.5
    assert "50%" in gate.line()


def b_failed_loudly_then(**skipped: Any) -> HistoryBuilder:
    """A run in which task a delivered, a fault took b's input and b was reported failed,
    and then the harness skipped a fault aimed at b (`skipped`: that event's fields)."""
    history = HistoryBuilder(task_registry=None, max_task_replicas=0)
    history.clean_task("a")
    history.fault(worker=0)
    history.step_error("b", cause="lost-input")
    history.task_failed("b")
    history.emit("fault-skipped", target={"role": "running"}, **skipped)
    return history


def test_a_trigger_on_a_task_already_reported_failed_is_moot_not_inconclusive():
    history = b_failed_loudly_then(
        fault_id="f0", kind="sigkill", trigger={"type": "at-step", "step": 1, "task": "b"},
        reason="its trigger point was never reached in this run", cause="not-reached")
    history.events[0]["schedule"] = {"faults": []}  # f0 is accounted for by its skip
    history.end("failed")

    verdict = check_history(history.events, one_output_each("a", "b"))

    assert [m.cause for m in verdict.fault_misses] == ["moot"]
    assert verdict.outcome == "valid", verdict.summary()


def test_a_fault_deferred_for_a_task_that_then_failed_loudly_is_moot():
    history = b_failed_loudly_then(
        fault_id="f9", kind="segfault",
        trigger={"type": "at-step", "step": 1, "nth": 3, "task_id": "b"}, cause="deferred",
        reason="each of the 1 time(s) its trigger point was reached, its role had "
               "no worker: worker tcp://x had already left")
    history.end("failed")

    verdict = check_history(history.events, one_output_each("a", "b"))

    assert [m.cause for m in verdict.fault_misses] == ["moot"]
    assert verdict.outcome == "valid", verdict.summary()


def test_an_nth_trigger_whose_task_failed_first_is_moot():
    history = b_failed_loudly_then(
        fault_id="f9", kind="segfault",
        trigger={"type": "at-step", "step": 1, "nth": 6, "task_id": "b"}, cause="not-reached",
        reason="its trigger point was never reached in this run")
    history.end("failed")

    verdict = check_history(history.events, one_output_each("a", "b"))

    assert [m.cause for m in verdict.fault_misses] == ["moot"]


@pytest.mark.parametrize(("reason", "cause"), [
    ("the run ended before this Poisson firing", "not-reached"),  # due after the end
    ("no live worker", "no-victim"),  # no machine left to preempt
])
def test_a_poisson_arrival_the_run_could_not_take_is_moot_not_inconclusive(reason, cause):
    history = HistoryBuilder(task_registry="memory")
    poisson = {"type": "poisson", "mtbf": 0.3, "seed": 1, "limit": 4}
    history.events[0]["schedule"] = {"faults": [{"id": "f0", "kind": "sigkill",
                                                 "trigger": poisson,
                                                 "target": {"role": "random"}}]}
    history.clean_task("a")
    history.emit("fault-skipped", fault_id="f0.1", kind="sigkill", trigger=poisson,
                 target={"role": "random"}, reason=reason, cause=cause)
    history.end()

    verdict = check_history(history.events, one_output_each("a"))

    assert verdict.outcome == "valid", verdict.summary()
    assert [m.cause for m in verdict.fault_misses] == ["moot"]


def removed(history: HistoryBuilder, worker: int, lost: int = 0) -> int:
    return history.emit("worker-removed", worker=history.workers[worker], expected=False,
                        processing=0, lost_computed=0, lost_scattered=lost,
                        lost_keys=[f"k{i}" for i in range(lost)])


def test_a_worker_removal_no_fault_explains_makes_the_run_inconclusive():
    # Nightlies saw a worker that its nanny restarted after a kill join, take scattered
    # data and leave 0.2 s later (the LocalCluster closed its nanny): a second death
    # that the schedule did not have. The fault explains the first removal only.
    history = clean_run()
    history.emit("fault", fault_id="f0", kind="sigkill", trigger={"type": "at-step"},
                 worker=history.workers[0], pid=100, fired_at=history.clock,
                 landed_at=history.clock + 0.001, noticed_at=history.clock + 0.01)
    other = removed(history, 1)  # another worker: f0 does not explain it
    removed(history, 0)
    history.wait(0.2)
    second = removed(history, 0, lost=1)
    history.end()

    verdict = check_history(history.events, one_output_each("a"))

    assert verdict.outcome == "inconclusive"
    assert [(m.cause, m.seq) for m in verdict.fault_misses] == [
        ("unexplained", other), ("unexplained", second)]
    assert verdict.fault_misses[1].detail == (
        f"the scheduler removed {history.workers[0]} (losing 1 key) with no fault of the "
        "run to explain it")
    assert "worker departures no fault explains: 2" in verdict.summary()
    assert "faults that did not land" not in verdict.summary()


def test_a_removal_recorded_just_before_its_fault_fired_is_explained():
    # The scheduler's notice and the nanny's `fired_at` come from two clocks of one host.
    history = clean_run()
    fired = history.clock + 0.02
    removed(history, 0)
    history.emit("fault", fault_id="f0", kind="exit", trigger={"type": "at-step"},
                 worker=history.workers[0], pid=100, fired_at=fired, landed_at=fired,
                 noticed_at=fired)
    history.end()

    verdict = check_history(history.events, one_output_each("a"))

    assert verdict.outcome == "valid", verdict.fault_misses


def test_removals_are_not_checked_in_a_run_with_a_scheduler_kill():
    # Every worker leaves with the scheduler, and joins its replacement.
    history = clean_run()
    history.emit("fault", fault_id="f0", kind="scheduler-kill", trigger={"type": "at-step"},
                 worker="tcp://scheduler", pid=1, fired_at=history.clock,
                 landed_at=history.clock, noticed_at=history.clock)
    removed(history, 0)
    removed(history, 1)
    history.end()

    verdict = check_history(history.events, one_output_each("a"))

    assert "unexplained" not in [m.cause for m in verdict.fault_misses]


def test_a_worker_outside_the_runs_fleet_may_leave_unexplained():
    # A spare the harness let go of between runs may still be leaving as a run starts:
    # not a worker of the run, so not a death it suffered. One that joined during the
    # run is of its fleet.
    history = clean_run()
    spare, joined = "tcp://10.0.0.9:40009", "tcp://10.0.0.8:40008"
    history.emit("worker-removed", worker=spare, expected=True, lost_keys=[])
    history.emit("worker-added", worker=joined)
    late = history.emit("worker-removed", worker=joined, expected=False, lost_keys=[])
    history.end()

    verdict = check_history(history.events, one_output_each("a"))

    assert [m.seq for m in verdict.fault_misses if m.cause == "unexplained"] == [late]
