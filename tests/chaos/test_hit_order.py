"""A lockstep replay keeps the order of trigger hits and firings: a fault that fired in
its original after another fault's trigger had been hit waits for that hit here too."""

from __future__ import annotations

import time

from chaos import AtStep, Fault, FaultSchedule, RandomWorker, ResultReady
from chaos.harness import run_schedule
from chaos.harness.hit_order import hits_first
from chaos.harness.replay_order import ReplayOrder
from chaos.workload import Workload
from tests.chaos.test_lockstep import finished, replaying
from tests.checker.histories import HistoryBuilder

# Steps of 0.15 s: t3's middle comes some 60 ms after f1 and f2 are due (the client's
# take of t0), on a host half as fast too. With 0.05 s steps it came 10 to 15 ms after,
# within the harness's decision time, and the order this test asserts fell either way.
WAVES = Workload(n_tasks=6, n_steps=1, payload_bytes=1_000, step_seconds=0.15, seed=5)


def hit_then_kill() -> list[dict]:
    """A made original (nightly --seed 1357's `s002`, cut down): f1 (a freeze) and f2
    (a kill) armed at t1's result; t3, just started on t0's worker, reached its middle
    (f0's trigger) before the harness got to f2, which killed that worker. f0 was
    decided after f2, and froze another worker."""
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3", "t4", "t5"):
        original.submit(task)
    x0 = original.invoke("t0", worker=0)
    x1 = original.invoke("t1", worker=1)
    original.invoke("t2", worker=2)
    original.outcome(x0)
    original.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="t0",
                  n_outputs=1)
    at_t1 = {"type": "result-ready", "step": 0, "task": "t1", "task_id": "t1",
             "execution": x1, "point": "result", "fraction": 1.0}
    original.emit("probe", execution=x1, step=0, point="result", fraction=1.0,
                  task_id="t1", armed=["f1", "f2"], worker=original.workers[1])
    x3 = original.invoke("t3", worker=0)
    original.emit("fault", fault_id="f1", kind="freeze", trigger=at_t1,
                  worker=original.workers[2], pid=102, fired_at=original.clock,
                  landed_at=original.clock, noticed_at=None, freeze_for=0.05)
    middle = {"type": "at-step", "step": 0, "fraction": 0.5, "task": "t3", "task_id": "t3",
              "execution": x3, "point": "progress"}
    original.emit("probe", execution=x3, step=0, point="progress", fraction=0.5,
                  task_id="t3", armed=["f0"], worker=original.workers[0])
    original.emit("fault", fault_id="f2", kind="sigkill", trigger=at_t1,
                  worker=original.workers[0], pid=100, fired_at=original.clock,
                  landed_at=original.clock, noticed_at=original.clock + 0.005)
    original.emit("fault", fault_id="f0", kind="freeze", trigger=middle,
                  worker=original.workers[2], pid=102, fired_at=original.clock,
                  landed_at=original.clock, noticed_at=None, freeze_for=0.05)
    for task in ("t1", "t2", "t4", "t5", "t3"):
        finished(original, task)
    original.end()
    return original.events


def test_a_fault_waits_for_the_hits_of_later_faults_that_came_before_it_fired():
    # f2 waits for f0's hit; f1 fired before it came, and f0 after f1 and f2. The faults
    # of one hit (f1, f2) do not wait for each other: their order is their hit's.
    assert hits_first(hit_then_kill()) == {"f2": ("f0",)}
    assert ReplayOrder.of(hit_then_kill()).hits_first == {"f2": ("f0",)}


def the_client_took_t0(lockstep, writer) -> None:
    """The client's landmarks up to f1's and f2's turn (the faults marked fired, so that
    it does not wait for them)."""
    for fault_id in ("f0", "f1", "f2"):
        lockstep.settled(fault_id)
    for task in ("t0", "t1", "t2", "t3", "t4", "t5"):
        writer.emit("submit", task_id=task, index=[], step=0, attempt=1, key=task,
                    reason="first")
    writer.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="t0",
                n_outputs=1)


def test_a_fault_is_too_early_until_the_hits_it_waits_for_have_come():
    lockstep, writer = replaying(hit_then_kill(), patience=5.0)
    the_client_took_t0(lockstep, writer)
    assert not lockstep.too_early("f1", time.monotonic())  # its turn, and no hit to wait
    assert lockstep.too_early("f2", time.monotonic())
    lockstep.hit(["f0"])
    assert not lockstep.too_early("f2", time.monotonic())
    lockstep.stop()


def test_a_hit_that_never_comes_holds_a_fault_for_patience_and_says_so():
    lockstep, writer = replaying(hit_then_kill(), patience=0.05)
    the_client_took_t0(lockstep, writer)
    since = time.monotonic()
    while lockstep.too_early("f2", since):
        time.sleep(0.01)
    assert time.monotonic() - since >= 0.05
    [diverged] = [e for e in writer.events if e["type"] == "lockstep-diverged"
                  and e["waiting"] == "fault f2"]
    assert diverged["missing"] == [["hit", "f0"]]
    lockstep.stop()


def test_a_replay_fires_a_kill_only_after_the_trigger_hit_its_original_had_first(harness):
    """Replayed, f1 and f2 are due as t1's result comes, a few ms after t3 began on f2's
    victim. Fired then, f2 kills t3 before its middle, and f0 is never reached. Keeping
    the original's order, f2 waits for f0's hit while f1 (due) fires at once, and all
    three fire."""
    schedule = FaultSchedule((Fault("freeze", AtStep(step=0, task="t3", fraction=0.5),
                                    RandomWorker(1), freeze_for=0.05),
                              Fault("freeze", ResultReady(step=0, task="t1"), RandomWorker(2),
                                    freeze_for=0.05),
                              Fault("sigkill", ResultReady(step=0, task="t1"),
                                    RandomWorker(3))), seed=0)
    record = run_schedule(schedule, "dask-raw", {}, WAVES, harness, timeout=60,
                          replay_of=hit_then_kill())
    fired = {e["fault_id"]: e["fired_at"] for e in record.events("fault")}
    assert set(fired) == {"f0", "f1", "f2"}, (record.events("fault-skipped"),
                                               record.events("lockstep-diverged"))
    [hit] = [e for e in record.events("probe") if e.get("armed") == ["f0"]
             and e.get("point") == "progress"][:1]
    assert fired["f1"] < hit["time"] < fired["f2"], (fired, hit["time"])
    held = [e for e in record.events("lockstep-diverged") if e["waiting"].startswith("fault")]
    assert not held, held
