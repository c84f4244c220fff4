"""The targets under the same schedule: raw Dask loses the task silently, and its history
shows how; the resilience library, with a registry, delivers it."""

from __future__ import annotations

import pytest

from chaos import (
    Fault,
    FaultSchedule,
    InputHeld,
    ReplicaHolder,
    RunningWorker,
    RunRecord,
    run_schedule,
)
from chaos.errors import ScheduleError, TargetUnavailable
from chaos.harness import make_target
from tests.chaos.kit import delivered

# Kill every copy of t0's step-1 input the moment t0 starts that step: the worker
# holding the scattered input (if another one runs the task), then the one running it.
LOSE_T0 = FaultSchedule((
    Fault("sigkill", InputHeld(step=1, task="t0"), ReplicaHolder(prefer_other=True)),
    Fault("sigkill", InputHeld(step=1, task="t0"), RunningWorker()),
))


def lose_t0_on_raw_dask(cluster, workload, runs: int = 3) -> RunRecord:
    """LOSE_T0 against raw Dask, run again (at most `runs` times) while t0 got through
    or the naive loop ended early. Rarely (once in a full-suite CI run, never in 60 runs
    in a row) t0 is delivered even so; the likely cause is a copy of the input the two
    kills miss, e.g. on a worker that fetched it for a step that was then stolen. And a
    scatter that meets a dying worker ends the naive loop with CommClosedError (nightly
    runs show it). Every assertion is made on a run that completed and lost t0, and the
    test fails if none of the `runs` did."""
    for _ in range(runs):
        record = run_schedule(LOSE_T0, "dask-raw", None, workload, cluster, timeout=30)
        if record.status == "completed" and ("t0", (0, 0)) not in delivered(record):
            break
    return record


def test_raw_dask_loses_the_task_silently_and_the_history_shows_it(harness, workload):
    record = lose_t0_on_raw_dask(harness, workload)
    assert record.status == "completed", (record.status, record.error)
    assert 1 <= len(record.events("fault")) <= 2, record.events("fault-skipped")

    # t0 was never delivered, and nothing said it failed: a silent loss.
    assert ("t0", (0, 0)) not in delivered(record)
    assert not record.events("task-failed")
    errors = [e for e in record.events("step-error") if e["task_id"] == "t0"]
    assert [(e["step"], e["cause"]) for e in errors] == [(1, "lost-input")], errors
    # ... because the scheduler lost the scattered input with the killed worker(s).
    removed = record.events("worker-removed")
    assert sum(e["lost_scattered"] for e in removed) >= 1, removed
    # Each lost key by name, computed ones too: where a retirement's keys went.
    assert all(len(e["lost_keys"]) == min(e["lost_scattered"], 20)
               and len(e["lost_computed_keys"]) == min(e["lost_computed"], 20)
               for e in removed), removed
    # Nobody resubmitted it: every submit is a first attempt.
    assert {e["attempt"] for e in record.events("submit")} == {1}


def test_the_checker_calls_the_raw_dask_loss_silent(harness, workload):
    checker = pytest.importorskip("chaos.judge.checker")
    record = lose_t0_on_raw_dask(harness, workload)
    verdict = checker.check_history(record.history, workload.oracle())
    lost = {(v.task_id, v.index) for v in verdict.by_kind()["lost"]}
    assert ("t0", (0, 0)) in lost and not verdict.valid, (
        record.status, record.error, record.events("fault"), verdict)


def test_the_resilience_library_with_a_registry_delivers_the_same_task(harness, workload):
    record = run_schedule(LOSE_T0, "resilience", {"task_registry": "memory"}, workload, harness,
                          timeout=60)
    assert record.status == "completed", record.error
    assert delivered(record) == set(workload.oracle())
    resubmitted = [e for e in record.events("submit")
                   if e["task_id"] == "t0" and e["step"] == 1 and e["attempt"] > 1]
    assert resubmitted and resubmitted[0]["reason"] in ("lost-input", "killed-worker")


def test_dask_raw_refuses_resilience_settings_before_running(harness, workload):
    with pytest.raises(ScheduleError, match="task_registry='memory'"):
        run_schedule(LOSE_T0, "dask-raw", {"task_registry": "memory"}, workload, harness)


def test_an_unknown_target_and_a_missing_pyrosetta_are_named():
    with pytest.raises(TargetUnavailable, match="choose one of"):
        make_target("spark")
    try:
        import pyrosetta  # noqa: F401
    except ImportError:
        with pytest.raises(TargetUnavailable, match="PyRosetta is not importable"):
            make_target("pyrosettacluster")
