"""Why a fault never fired: the cause the checker reads (`chaos.judge.landing` calls a
fault deferred for a task that then failed loudly moot, and one never reached not)."""

from __future__ import annotations

from chaos.harness.unfired import Deferral, never_fired, never_fired_firings, unfinished_reason
from chaos.spec import AtStep, AtTime, Fault, Poisson, ResultReady


def test_a_fault_whose_role_never_had_a_worker_is_skipped_as_deferred_for_its_task():
    fault = Fault("sigkill", AtStep(step=1, fraction=0.5, nth=3))
    trigger, reason, cause = never_fired(
        fault, original=None, deferred=Deferral(2, "its input is being re-made", "t7"),
        nth_task="t7")
    assert cause == "deferred"
    assert trigger["task_id"] == "t7"
    assert reason.startswith("each of the 2 time(s)") and reason.endswith("re-made")


def test_a_fault_never_reached_names_its_nth_task_and_a_timed_one_its_time():
    trigger, reason, cause = never_fired(Fault("sigkill", AtStep(step=1, fraction=0.5, nth=3)),
                                         original=None, deferred=None, nth_task="t2")
    assert (trigger["task_id"], cause) == ("t2", "not-reached")
    _, reason, cause = never_fired(Fault("sigkill", AtTime(4.0)), original=None,
                                   deferred=None, nth_task=None)
    assert (reason, cause) == ("the run ended before t=4 s", "not-reached")


def test_a_lockstep_replay_skips_a_fault_as_its_original_did():
    fault = Fault("sigkill", ResultReady(step=0, task="t0"))
    original = {"trigger": {"type": "result-ready", "step": 0, "task": "t0"},
                "reason": "the run ended first", "cause": "not-reached"}
    trigger, reason, cause = never_fired(fault, original=original,
                                         deferred=Deferral(1, "no holder", "t0"), nth_task=None)
    assert (trigger, cause) == (original["trigger"], "not-reached")
    assert reason.startswith("its original never fired it (the run ended first)")


def test_the_run_end_names_each_fault_and_poisson_firing_not_spent_and_no_other():
    faults = {"f0": Fault("sigkill", AtStep(step=0, task="t0")),
              "f1": Fault("exit", ResultReady(step=1, nth=2)),
              "f2": Fault("sigkill", Poisson(mtbf=5.0, limit=3))}
    timed = [(1.0, "f2.0", "f2"), (2.0, "f2.1", "f2"), (3.0, "f2.2", "f2")]
    # f2's first firing was skipped (no worker to hit): f2 itself is not spent, and is
    # still no fault of its own to skip, only its firings are.
    ended = list(never_fired_firings(
        faults, timed, {"f0", "f2.0"}, original={}, deferrals={},
        nth_task=lambda fault: "t4"))
    assert [(firing, fault.kind) for firing, fault, _ in ended] == [
        ("f1", "exit"), ("f2.1", "sigkill"), ("f2.2", "sigkill")]
    _, _, (trigger, _, cause) = ended[0]
    assert (trigger["task_id"], cause) == ("t4", "not-reached")
    assert ended[1][2][1:] == ("the run ended before this Poisson firing", "not-reached")


def test_an_unfinished_execution_is_blamed_on_its_workers_fault_only():
    faulted = {"tcp://a:1": "f1 (sigkill)"}
    assert unfinished_reason("tcp://a:1", faulted) == "worker tcp://a:1 got fault f1 (sigkill)"
    assert unfinished_reason("tcp://b:2", faulted) == (
        "no outcome was reported before the run ended")
