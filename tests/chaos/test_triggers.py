"""Logical triggers fire exactly at their probe point; roles pick the right worker;
time triggers fire on the harness's clock."""

from __future__ import annotations

from chaos import (
    AtStep,
    AtTime,
    Fault,
    FaultSchedule,
    InputHeld,
    Poisson,
    RandomWorker,
    ReplicaHolder,
    ResultReady,
    run_schedule,
)
from tests.chaos.kit import invoke_of, of_execution, one_fault, outcomes_of


def run(cluster, workload, *faults, target="dask-raw", config=None, timeout=30):
    record = run_schedule(FaultSchedule(faults, seed=5), target, config, workload, cluster,
                          timeout=timeout)
    assert record.status != "crashed", record.error
    return record


def test_a_kill_lands_while_the_task_is_at_the_requested_step_and_fraction(harness, workload):
    record = run(harness, workload, Fault("sigkill", AtStep(step=1, fraction=0.25, task="t2")))
    fault = one_fault(record)
    execution = fault["trigger"]["execution"]
    invoke = invoke_of(record, execution)
    assert (invoke["task_id"], invoke["step"], invoke["index"]) == ("t2", 1, [0])
    probes = [e for e in of_execution(record, execution) if e["type"] == "probe"]
    last = probes[-1]
    assert (last["step"], last["fraction"], last["point"]) == (1, 0.25, "progress")
    assert probes[-1]["armed"] == ["f0"]
    # The worker died holding the task there: no later probe, no outcome but "info".
    assert outcomes_of(record, execution) == ["info"]
    assert fault["worker"] == invoke["worker"]


def test_a_result_ready_trigger_kills_after_the_step_returned_but_before_dask_has_it(
    harness, workload
):
    record = run(harness, workload, Fault("exit", ResultReady(step=0, task="t3")))
    execution = one_fault(record)["trigger"]["execution"]
    probes = [e for e in of_execution(record, execution) if e["type"] == "probe"]
    assert (probes[-1]["point"], probes[-1]["fraction"], probes[-1]["step"]) == ("result", 1.0, 0)
    assert probes[-2]["fraction"] == 0.5  # the step ran to its end first
    assert outcomes_of(record, execution) == ["info"]


def test_the_nth_task_to_start_is_resolved_at_run_time(harness, workload):
    record = run(harness, workload, Fault("sigkill", AtStep(step=0, fraction=0.5, nth=2)))
    fault = one_fault(record)
    started = []
    for event in record.events("invoke"):
        if event["task_id"] not in started:
            started.append(event["task_id"])
    assert fault["trigger"]["task_id"] == started[1]
    assert invoke_of(record, fault["trigger"]["execution"])["task_id"] == started[1]


def test_an_input_held_trigger_hits_a_worker_holding_the_input(harness, workload):
    record = run(harness, workload, Fault("sigkill", InputHeld(step=1, task="t0"), ReplicaHolder()))
    fault = one_fault(record)
    assert fault["holders"] and fault["worker"] in fault["holders"]
    invoke = invoke_of(record, fault["trigger"]["execution"])
    assert (invoke["task_id"], invoke["step"]) == ("t0", 1)
    others = [h for h in fault["holders"] if h != invoke["worker"]]
    assert fault["worker"] == (others[0] if others else invoke["worker"])


def test_an_inline_input_has_no_holder_so_the_fault_is_skipped_with_the_reason(
    harness, workload
):
    record = run(harness, workload, Fault("sigkill", InputHeld(step=1, task="t0"), ReplicaHolder()),
                 config={"scatter": False})
    assert not record.events("fault")
    [skipped] = record.events("fault-skipped")
    assert "held the task's input" in skipped["reason"]
    assert len(record.events("deliver")) == workload.expected_outputs()


def test_a_trigger_point_never_reached_is_recorded_as_skipped(harness, workload):
    record = run(harness, workload, Fault("sigkill", AtStep(step=5, task="t0")))
    [skipped] = record.events("fault-skipped")
    assert skipped["fault_id"] == "f0" and "never reached" in skipped["reason"]


def test_time_triggers_fire_after_their_moment_on_a_seeded_random_worker(harness, workload):
    record = run(harness, workload,
                 Fault("sigkill", AtTime(0.1), RandomWorker(salt=1)),
                 Fault("freeze", Poisson(mtbf=0.05, seed=2, limit=2), RandomWorker(),
                       freeze_for=0.1))
    start = record.history[0]["time"]
    by_id = {e["fault_id"]: e for e in record.events("fault")}
    skipped = {e["fault_id"] for e in record.events("fault-skipped")}
    assert "f0" in by_id and by_id["f0"]["fired_at"] >= start + 0.1
    firings = Poisson(mtbf=0.05, seed=2, limit=2).times()
    for n, moment in enumerate(firings):
        fault_id = f"f1.{n}"
        assert fault_id in by_id or fault_id in skipped
        if fault_id in by_id:
            assert by_id[fault_id]["fired_at"] >= start + moment
            assert by_id[fault_id]["trigger"]["at"] == moment
