"""The expected-outcome model: what each configuration must do under the faults it met."""

from __future__ import annotations

import itertools

import pytest

from chaos.judge import (
    DEFAULT_MODEL,
    ExpectedOutcome,
    NoFaults,
    OutcomeModel,
    RegistryResubmits,
    ReplicasKeepAHolder,
    RunConfiguration,
    RunFacts,
    check_history,
    count_distinct_workers_lost,
    count_overlapping_losses,
    expected_outcome,
)
from tests.checker.histories import HistoryBuilder, one_output_each

REPLICAS = (0, 1, 2, None)
REGISTRIES = (None, "memory", "disk")


def run_with_faults(*workers: int, kind: str = "sigkill", n_workers: int = 3,
                    target: str = "resilience", **config) -> HistoryBuilder:
    history = HistoryBuilder(target, workers=n_workers, **config)
    for worker in workers:
        history.fault(worker=worker, kind=kind)
    return history


# ---------------------------------------------------------------------------- the grid


@pytest.mark.parametrize(("replicas", "registry", "scatter"),
                         list(itertools.product(REPLICAS, REGISTRIES, (True, False))))
def test_without_faults_every_configuration_must_deliver_all(replicas, registry, scatter):
    history = run_with_faults(max_task_replicas=replicas, task_registry=registry,
                              scatter=scatter)
    expected = expected_outcome(history.events)
    assert expected.outcome == "must-deliver-all" and expected.rule == "no-faults"


@pytest.mark.parametrize(("replicas", "registry", "scatter"),
                         list(itertools.product(REPLICAS, REGISTRIES, (True, False))))
def test_one_kill_must_be_survived_by_any_protection_and_may_be_lost_loudly_without(
    replicas, registry, scatter
):
    history = run_with_faults(0, max_task_replicas=replicas, task_registry=registry,
                              scatter=scatter)
    expected = expected_outcome(history.events)
    protected = (
        registry is not None
        or not scatter
        or replicas is None
        or replicas >= 2
    )
    assert expected.must_deliver_all == protected, expected.explain()
    assert expected.why  # always explained


def test_dask_raw_is_judged_by_the_same_rules():
    history = run_with_faults(0, target="dask-raw", max_task_replicas=0, task_registry=None)
    expected = expected_outcome(history.events)
    assert expected.outcome == "may-fail-loudly" and expected.rule == "unprotected"
    assert "only as reported failures" in expected.why


# ---------------------------------------------------------------------------- registry


def registry_run(faults: int, *, max_attempts: int = 5) -> HistoryBuilder:
    history = HistoryBuilder(workers=2, task_registry="memory", max_attempts=max_attempts)
    history.submit("a")
    for attempt in range(1, faults + 1):
        execution = history.invoke("a", worker=attempt % 2, attempt=attempt)
        history.fault(worker=attempt % 2)
        history.outcome(execution, "info")
        history.step_error("a", attempt=attempt)
    history.task_failed("a", reason=f"exceeded max_attempts={max_attempts}")
    history.end("failed")
    return history


def test_with_a_registry_a_task_may_fail_only_after_max_attempts_faults():
    assert expected_outcome(registry_run(5).events).failure_excuse("a") is not None
    assert expected_outcome(registry_run(4).events).failure_excuse("a") is None
    assert expected_outcome(registry_run(2, max_attempts=2).events).failure_excuse("a")


def test_the_checker_flags_a_registry_that_gave_up_early_and_accepts_one_that_did_not():
    early = check_history(registry_run(2).events, one_output_each("a"))
    assert [v.kind for v in early.violations] == ["reported-failed"]
    exhausted = check_history(registry_run(5).events, one_output_each("a"))
    assert exhausted.valid, exhausted.summary()


def test_a_poison_task_that_raises_may_be_reported_failed_in_any_configuration():
    history = HistoryBuilder(task_registry="disk")
    history.fault(worker=1)
    history.submit("poison")
    history.execute("poison", outcome="fail")
    history.task_failed("poison", reason="ValueError: poison")
    history.end("failed")
    expected = expected_outcome(history.events)
    assert expected.must_deliver_all
    assert "raised" in expected.failure_excuse("poison")
    assert expected.failure_excuse("innocent") is None


def test_a_task_killing_its_own_workers_counts_towards_its_attempts():
    # Deaths on workers no harness fault touched: a poison task that segfaults.
    history = HistoryBuilder(workers=2, task_registry="disk", max_attempts=3)
    history.fault(worker=1)
    for attempt in (1, 2, 3):
        history.execute("poison", worker=0, outcome="info", attempt=attempt)
    history.task_failed("poison")
    history.end("failed")
    assert expected_outcome(history.events).failure_excuse("poison") is not None


# ---------------------------------------------------------------------------- replicas


@pytest.mark.parametrize(("replicas", "lost_workers", "must"), [
    (2, (0,), True),
    (2, (0, 1), False),
    (2, (0, 0), True),  # one worker hit twice is one holder lost
    (3, (0, 1), True),
    (3, (0, 1, 2), False),
    (None, (0, 1), True),  # every worker of 3 holds a copy
    (None, (0, 1, 2), False),
])
def test_replicas_keep_inputs_while_a_holder_lives(replicas, lost_workers, must):
    history = run_with_faults(*lost_workers, n_workers=3, max_task_replicas=replicas)
    expected = expected_outcome(history.events)
    assert expected.rule == "replicas"
    assert expected.must_deliver_all == must, expected.explain()


def test_retire_moves_data_off_so_it_costs_no_holder():
    history = run_with_faults(0, 1, kind="retire", max_task_replicas=0)
    assert expected_outcome(history.events).must_deliver_all


def test_a_retire_costs_a_replicated_input_a_copy():
    # RetireWorker drops the retiring worker's replica when another copy exists: with
    # 2 copies, a retire then a kill elsewhere may take an input's last copy.
    history = HistoryBuilder(workers=3, max_task_replicas=2)
    history.fault(worker=0, kind="retire")
    history.fault(worker=1, kind="sigkill")
    expected = expected_outcome(history.events)
    assert expected.rule == "replicas"
    assert not expected.must_deliver_all, expected.explain()


def test_an_unknown_fault_kind_counts_as_a_loss():
    history = run_with_faults(0, kind="meteor", max_task_replicas=0)
    assert not expected_outcome(history.events).must_deliver_all


def test_the_library_re_replicates_so_its_losses_count_in_time_order():
    """Issue 11: copy losses are counted per fault and in time order. The library's
    replica guard re-makes a lost copy once the loss is noticed, so two losses 30 s
    apart never left an input without a holder; a system without the guard (or a
    model that does not credit it) counts every distinct worker lost."""
    history = HistoryBuilder(workers=3, max_task_replicas=2)
    history.fault(worker=0, noticed=0.1)
    history.wait(30.0)  # long after the first loss was noticed and repaired
    history.fault(worker=1, noticed=0.1)
    facts = RunFacts.from_events(history.events)
    assert count_distinct_workers_lost(facts) == 2
    assert count_overlapping_losses(grace=5.0)(facts) == 1
    assert DEFAULT_MODEL.expect(facts).must_deliver_all
    strict = OutcomeModel(rules=(
        NoFaults(), RegistryResubmits(),
        ReplicasKeepAHolder(count_holder_losses=count_distinct_workers_lost),
        *DEFAULT_MODEL.rules[3:],
    ))
    assert not strict.expect(facts).must_deliver_all
    without_guard = [{**history.events[0], "target": "dask-raw"}, *history.events[1:]]
    assert not expected_outcome(without_guard).must_deliver_all


def test_a_worker_restarted_at_its_old_address_is_another_worker_process():
    # A nanny restarts a killed worker; with a fixed port it comes back at the same
    # address as a new process. Two kills there lost two workers' copies, and a death of
    # the new process is not explained by the fault that killed the old one.
    history = HistoryBuilder(workers=3, max_task_replicas=1)
    history.fault(worker=0, pid=100)
    history.wait(1.0)
    history.fault(worker=0, pid=200)
    execution = history.invoke("bystander", worker=0, pid=300)
    history.outcome(execution, "info")
    facts = RunFacts.from_events(history.events)
    assert count_distinct_workers_lost(facts) == 2
    assert count_overlapping_losses(grace=0.5)(facts) == 1  # the first was re-made by then
    assert count_overlapping_losses(grace=5.0)(facts) == 2
    assert facts.unexplained_deaths == {"bystander": 1}


def test_a_fault_whose_pid_was_not_recorded_matches_its_worker_on_the_address():
    history = HistoryBuilder(workers=2, max_task_replicas=0)
    history.emit("fault", fault_id="f0", kind="sigkill", trigger={}, worker=history.workers[0],
                 pid=None, fired_at=history.clock, landed_at=history.clock, noticed_at=None)
    history.outcome(history.invoke("hit", worker=0, pid=123), "info")
    assert RunFacts.from_events(history.events).unexplained_deaths == {}


def test_a_fault_that_did_not_land_counts_for_nothing():
    history = HistoryBuilder(workers=3, max_task_replicas=0)
    history.emit("fault", fault_id="f0", kind="sigkill", trigger={}, worker=history.workers[0],
                 pid=100, fired_at=history.clock, landed_at=None, noticed_at=None,
                 error="process 100 was already gone")
    assert expected_outcome(history.events).rule == "no-faults"


def test_a_freeze_the_scheduler_never_noticed_lost_no_data():
    history = run_with_faults(0, kind="freeze", max_task_replicas=0)
    history.events[-1]["noticed_at"] = None  # resumed within the scheduler's timeouts
    assert expected_outcome(history.events).must_deliver_all
    noticed = run_with_faults(0, kind="freeze", max_task_replicas=0)
    assert not expected_outcome(noticed.events).must_deliver_all


def test_loud_failures_must_be_explained_by_a_fault_that_reached_the_task():
    """Issue 11: allowed failures are gated. With no registry and one copy, a task whose
    attempt a fault cut short may fail loudly; a task no fault reached may not (e.g. a
    configuration reporting every task failed at the first fault)."""
    history = run_with_faults(0, max_task_replicas=0)
    history.step_error("hit", cause="lost-input")
    history.task_failed("hit")
    history.task_failed("bystander")
    history.end("failed")
    verdict = check_history(history.events, one_output_each("hit", "bystander"))
    excuses = {f.task_id: f.excuse for f in verdict.reported_failures}
    assert excuses["hit"] is not None and excuses["bystander"] is None
    assert [v.task_id for v in verdict.by_kind()["reported-failed"]] == ["bystander"]


def test_replicas_2_failing_after_a_single_fault_is_a_violation():
    history = HistoryBuilder(workers=3, max_task_replicas=2)
    history.fault(worker=0)
    history.step_error("a", cause="lost-input")
    history.task_failed("a")
    history.wait(30.0)
    history.fault(worker=1)  # a second loss, but after the failure
    history.end("failed")
    verdict = check_history(history.events, one_output_each("a"))
    assert [v.task_id for v in verdict.by_kind()["reported-failed"]] == ["a"]


def test_losses_never_noticed_stay_open_forever():
    history = HistoryBuilder(workers=3, max_task_replicas=2)
    history.fault(worker=0, noticed=None)
    history.wait(100.0)
    history.fault(worker=1, noticed=0.1)
    assert count_overlapping_losses()(RunFacts.from_events(history.events)) == 2


# ---------------------------------------------------------------------------- inline inputs


def inline_run(interruptions: int, **config) -> HistoryBuilder:
    history = HistoryBuilder(workers=2, scatter=False, **config)
    history.submit("a")
    for attempt in range(interruptions):
        execution = history.invoke("a", worker=attempt % 2)
        history.fault(worker=attempt % 2)
        history.outcome(execution, "info")
    history.step_error("a", cause="killed-worker")
    history.task_failed("a", reason="KilledWorker")
    history.end("failed")
    return history


def test_inline_inputs_survive_until_dask_gives_up_with_killed_worker():
    assert expected_outcome(inline_run(3).events).failure_excuse("a") is None
    assert expected_outcome(inline_run(4).events).failure_excuse("a") is not None
    assert expected_outcome(inline_run(2, allowed_failures=1).events).failure_excuse("a")


# ---------------------------------------------------------------------------- the model itself


def test_a_model_without_a_catch_all_rule_says_how_to_fix_it():
    history = run_with_faults(0, max_task_replicas=0)
    with pytest.raises(ValueError, match="catch-all"):
        OutcomeModel(rules=(NoFaults(),)).expect(history.events)


def test_a_history_without_run_start_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="run-start"):
        RunFacts.from_events([])


def test_expected_outcomes_round_trip_and_keep_int_and_str_ids_apart():
    expected = ExpectedOutcome("must-deliver-all", "registry", "why", ((1, "because"),))
    assert ExpectedOutcome.from_dict(expected.to_dict()) == expected
    assert expected.failure_excuse(1) == "because"
    assert expected.failure_excuse("1") is None


def test_a_fault_counts_from_when_it_landed_not_when_its_event_was_written():
    """A fault's event is written once the scheduler noticed it, which may come after the
    failure it caused: the model reads landing times, not seqs (found by the nightly)."""
    history = HistoryBuilder(workers=3, max_task_replicas=0)
    landed = history.clock
    history.step_error("a", cause="lost-input")
    history.task_failed("a")
    history.emit("fault", fault_id="f0", kind="sigkill", trigger={}, worker=history.workers[0],
                 pid=100, fired_at=landed, landed_at=landed, noticed_at=history.clock)
    history.end("failed")
    verdict = check_history(history.events, one_output_each("a"))
    assert verdict.reported_failures[0].excuse is not None, verdict.summary()
    assert verdict.valid


def test_a_sigterm_takes_its_data_when_the_scheduler_drops_the_worker_not_at_landing():
    """Found by the nightly: a sigterm'ed worker leaves the scheduler (its inputs lost,
    tasks failed) before the harness sees its process gone (`landed_at`)."""
    history = HistoryBuilder(workers=3, max_task_replicas=0)
    fired = history.clock
    history.step_error("a", cause="lost-input")
    history.task_failed("a")
    history.emit("fault", fault_id="f0", kind="sigterm", trigger={}, worker=history.workers[0],
                 pid=100, fired_at=fired, landed_at=history.clock, noticed_at=fired + 0.001)
    history.end("failed")
    assert check_history(history.events, one_output_each("a")).valid


def test_labels_tell_apart_every_setting_a_campaign_crosses():
    # Summaries and the report group runs by label: two configurations of one label
    # would pool their figures under one of them.
    configs = [{"task_registry": "disk"}, {"task_registry": "disk", "notice": 2.0},
               {"task_registry": "disk", "step_timeout": 0.5},
               {"task_registry": "disk", "max_attempts": 2}]
    labels = [RunConfiguration.from_run_start({"target": "resilience", "config": config}).label
              for config in configs]
    assert labels == ["resilience r=0 reg=disk scatter", "resilience r=0 reg=disk scatter notice=2",
                      "resilience r=0 reg=disk scatter timeout=0.5",
                      "resilience r=0 reg=disk scatter attempts=2"]
