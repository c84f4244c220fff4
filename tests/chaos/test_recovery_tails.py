"""Issue 12's long recovery tails, replayed from their schedules: no wait in the library
holds the whole run up while one worker is dead or frozen.

The tail: a scatter goes through the scheduler, which sends each input to a worker it
believes alive. A frozen worker holds the call until it thaws (a worker that died a
moment before the scheduler noticed, for Dask's 30 s connect timeout); the run loop used
to wait for the scatter (up to 30 s), and every other step's delivery waited with it.
"""

from __future__ import annotations

import time

from chaos import (
    AtStep,
    Fault,
    FaultSchedule,
    RandomWorker,
    ReplicaHolder,
    ResultReady,
    RunningWorker,
    Workload,
    check_history,
    run_schedule,
)
from chaos.analysis.tables import recovery_table
from chaos.harness.coordinator import Coordinator
from chaos.harness.inflict import Landing, Victim
from chaos.history import HistoryWriter

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



def test_a_second_fault_is_not_aimed_at_a_worker_the_first_just_killed(harness, monkeypatch):
    # Nightly seed 3141, s022: a segfault and an `exit` fired at the same point, at the
    # same (running) worker, before the scheduler's notice of the segfault came in. The
    # exit was aimed at the dead process: it waited the whole landing bound (5 s), every
    # held probe of the run waited with it, the run's recoveries took 5.1 s, and the
    # exit claimed a landing it did not cause. Now it is deferred to the watched task's
    # next execution. Membership here is kept stale, as it was then.
    harness.settle()
    at_start = dict(harness.refresh().workers)
    current = harness.live_workers
    monkeypatch.setattr(harness, "live_workers", lambda: {**at_start, **current()})
    workload = Workload(n_tasks=4, n_steps=2, payload_bytes=10_000, step_seconds=0.05, seed=2)
    at = ResultReady(step=1, task="t1")
    schedule = FaultSchedule((Fault("segfault", at), Fault("exit", at)), seed=2)

    record = run_schedule(schedule, "resilience", {"task_registry": "memory"}, workload,
                          harness, timeout=60)

    assert record.status == "completed", record.error
    assert check_history(record.history, workload.oracle()).valid
    faults = record.events("fault")
    hit = [e["worker"] for e in faults]
    assert len(set(hit)) == len(hit), f"one worker got two faults: {hit}"
    assert all(e["landed_at"] is not None and e["landed_at"] - e["fired_at"] < 2.0
               for e in faults), faults
    worst = recovery_table([record.history])["to_deliver"].max()
    assert worst < 2.0, f"a recovery took {worst:.1f} s"


def test_a_graceful_fault_after_an_abrupt_one_at_the_same_point_does_not_wait_on_the_dead(
        harness):
    # The `ci` campaign's 5.1 s tails (s005, every CI run): a segfault of the worker
    # running t4 and a nanny-close of another holder of its input, fired at the same
    # point. Before a graceful fault the coordinator lets the held probe go, and waits
    # for it (a graceful close waits for running tasks); that probe's worker was the one
    # the segfault had just killed, so the release waited its whole bound (5 s), with
    # every held probe of the run waiting on the coordinator.
    workload = Workload(n_tasks=4, n_steps=2, payload_bytes=10_000, step_seconds=0.05, seed=2)
    at = AtStep(step=1, fraction=0.25, task="t1")
    schedule = FaultSchedule((Fault("segfault", at),
                              Fault("nanny-close", at, target=ReplicaHolder(prefer_other=True))),
                             seed=2)

    record = run_schedule(schedule, "resilience",
                          {"task_registry": "memory", "max_task_replicas": None}, workload,
                          harness, timeout=60)

    assert record.status == "completed", record.error
    assert check_history(record.history, workload.oracle()).valid
    segfault, close = sorted(record.events("fault"), key=lambda e: e["fault_id"])
    assert segfault["worker"] != close["worker"], "both faults hit one worker"
    waited = close["fired_at"] - segfault["landed_at"]
    assert waited < 1.0, f"the nanny-close fired {waited:.1f} s after the segfault landed"
    worst = recovery_table([record.history])["to_deliver"].max()
    assert worst < 2.0, f"a recovery took {worst:.1f} s"


def test_no_waiting_release_goes_to_a_worker_an_earlier_fault_took_down():
    # Nightly seed 8080, s013 (5.3 s), and a `ci` campaign's s000 (5.1 s): a retire took
    # a worker while its step ran on; that step's next probe was the hit of a second
    # graceful fault. Before a graceful fault the coordinator lets the hit's probe go and
    # waits for it (a graceful close waits for running tasks), so it waited on a worker
    # already leaving, for the whole bound (5 s), with every held probe of the run.
    # Which probe arrives from a leaving worker is a race; the decision is not, so the
    # coordinator is driven here with its own parts (a landing that is immediate).
    workers = {f"tcp://w{i}": Victim(f"tcp://w{i}", 100 + i, None) for i in range(3)}
    releases: list[tuple[str, bool]] = []

    class Retired:  # the inflictor's part: every fault lands at once
        def inflict(self, kind, victim, **_):
            now = time.time()
            return Landing(kind, victim.address, victim.pid, "test", now, now)

    schedule = FaultSchedule(
        (Fault("retire", AtStep(step=0, fraction=0.25, task="t0"), target=RunningWorker()),
         Fault("nanny-close", AtStep(step=0, fraction=0.5, task="t0"),
               target=RandomWorker(salt=1))), seed=3)
    coordinator = Coordinator(
        schedule=schedule, history=HistoryWriter(), inflictor=Retired(),
        release_hold=lambda address, hold, decisions, wait=False: releases.append(
            (address, wait)),
        find_holders=lambda key: [], live_workers=lambda: dict(workers),
        started_at=time.time())
    probe = {"worker": "tcp://w0", "task_id": "t0", "step": 0, "point": "progress",
             "execution": "e0"}

    coordinator._on_hit({**probe, "fraction": 0.25, "hold": "h1", "armed": ["f0"]})
    coordinator._on_hit({**probe, "fraction": 0.5, "hold": "h2", "armed": ["f1"]})
    for lander in coordinator._landers:
        lander.join(5)

    fired = {f.fault_id: f.worker for f in coordinator._fired.all()}
    assert fired["f0"] == "tcp://w0" and fired["f1"] != "tcp://w0", fired
    assert releases[0] == ("tcp://w0", True)  # before the retire: the step must go on
    assert ("tcp://w0", True) not in releases[1:], (
        f"a waiting release went to the worker the retire took down: {releases}")
