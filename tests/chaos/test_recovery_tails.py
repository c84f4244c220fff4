"""Issue 12's long recovery tails, replayed from their schedules: no wait in the library
holds the whole run up while one worker is dead or frozen.

The tail: a scatter goes through the scheduler, which sends each input to a worker it
believes alive. A frozen worker holds the call until it thaws (a worker that died a
moment before the scheduler noticed, for Dask's 30 s connect timeout); the run loop used
to wait for the scatter (up to 30 s), and every other step's delivery waited with it.
"""

from __future__ import annotations

from chaos import AtStep, Fault, FaultSchedule, Workload, run_schedule

FREEZE = 8.0  # seconds: long enough that a wait for the thaw cannot pass for anything else


def test_a_frozen_worker_does_not_hold_up_the_deliveries_of_the_others(harness):
    # t0 freezes its worker mid-step 0. While it is frozen, the other tasks' step-0
    # results come in on the two other workers, and their step-1 inputs are scattered:
    # sooner or later to the frozen worker, which Dask still counts as running.
    workload = Workload(n_tasks=9, n_steps=2, payload_bytes=10_000, step_seconds=0.2, seed=5)
    schedule = FaultSchedule(
        (Fault("freeze", AtStep(step=0, fraction=0.5, task="t0"), freeze_for=FREEZE),), seed=5)

    record = run_schedule(schedule, "resilience",
                          {"task_registry": "disk", "max_task_replicas": 1}, workload, harness,
                          timeout=90)

    [fault] = record.events("fault")
    [thawed] = record.events("fault-ended")
    frozen_from, frozen_until = fault["landed_at"], thawed["time"]
    assert frozen_until - frozen_from > FREEZE - 1, "the freeze did not last"
    assert record.status == "completed", record.error
    during = [e for e in record.events("deliver")
              if frozen_from < e["time"] < frozen_until and e["task_id"] != "t0"]
    submitted = [e for e in record.events("submit")
                 if frozen_from < e["time"] < frozen_until and e["step"] == 1]
    # Before the fix, the run loop sat in a scatter to the frozen worker until it thawed:
    # no step-1 submission, and no delivery, for the whole freeze.
    assert submitted, "no step was submitted while one worker was frozen"
    assert len(during) >= 3, (
        f"only {len(during)} outputs of other tasks were delivered during the "
        f"{frozen_until - frozen_from:.1f} s freeze"
    )
