"""Dask's work stealing (chaos.harness.steal_order): the scheduler plugin says what the
stealer moved, a lockstep replay of an original whose stealer moved nothing runs
without it, and one whose stealer moved steps only off frozen workers asks those steals
itself, at the same thaws."""

from __future__ import annotations

import asyncio
import time

import dask
from distributed import Client, Scheduler, Worker

from chaos import AtStep, Fault, FaultSchedule
from chaos.harness import run_schedule
from chaos.harness.membership import MembershipReporter
from chaos.harness.replay_order import ReplayOrder, first_workers
from chaos.harness.scheduler_calls import start_run_order_afresh
from chaos.harness.steal_order import ThawSteal, stealing_in_replay, steals_at_thaw
from chaos.workload import Workload
from tests.checker.histories import HistoryBuilder

TOPIC = "chaos-steal-test"


def original(*, stealing: bool | None, stole: bool) -> list[dict]:
    history = HistoryBuilder("dask-raw", workers=2)
    if stealing is not None:
        history.events[0]["stealing"] = stealing
    if stole:
        history.emit("step-stolen", key="f-1", victim=history.workers[0],
                     thief=history.workers[1])
    history.end()
    return history.events


def test_a_replay_steals_only_if_its_original_stole_or_does_not_say():
    assert not stealing_in_replay(original(stealing=True, stole=False), ())
    assert stealing_in_replay(original(stealing=True, stole=True), ())
    assert stealing_in_replay(original(stealing=None, stole=False), ())  # recorded before
    assert stealing_in_replay(original(stealing=False, stole=False), ())  # configured off


def stolen_at_a_thaw(*, after_thaw: float, thief: int = 1) -> list[dict]:
    """t1's step, queued on worker 0, stolen by `thief` `after_thaw` s after the end of
    a freeze of worker 0 (negative: during it)."""
    history = HistoryBuilder("dask-raw", workers=3)
    history.events[0]["stealing"] = True
    history.submit("t0")
    history.submit("t1")
    history.emit("fault", fault_id="f0", kind="freeze", trigger={"type": "at-time", "at": 1},
                 worker=history.workers[0], pid=100, fired_at=history.clock,
                 landed_at=history.clock, noticed_at=None, freeze_for=1.0)
    history.wait(1.0)
    history.emit("fault-ended", fault_id="f0", worker=history.workers[0], how="sigcont")
    history.wait(after_thaw)
    history.emit("step-stolen", key=history.events[2]["key"], victim=history.workers[0],
                 thief=history.workers[thief] if thief < 3 else "tcp://elsewhere:1")
    history.end()
    return history.events


def test_a_steal_off_a_frozen_worker_at_its_thaw_is_asked_by_the_replay_itself():
    events = stolen_at_a_thaw(after_thaw=0.01)
    assert steals_at_thaw(events, first_workers(events)) == (
        ThawSteal("f0", (("t1", (), 0), 1), 1),)
    assert not ReplayOrder.of(events).stealing  # every steal asked: the stealer stays off
    for other in (stolen_at_a_thaw(after_thaw=0.5),  # long after the thaw: Dask's own
                  stolen_at_a_thaw(after_thaw=0.01, thief=3)):  # to a worker not first
        assert steals_at_thaw(other, first_workers(other)) == ()
        assert ReplayOrder.of(other).stealing
    during = stolen_at_a_thaw(after_thaw=-0.5)
    assert steals_at_thaw(during, first_workers(during)) == (
        ThawSteal("f0", (("t1", (), 0), 1), 1),)


def slow(i: int) -> int:
    time.sleep(0.05)
    return i


async def steals_seen(stealing: bool) -> tuple[list[dict], int]:
    """Twelve 50 ms steps queued on one of two single-thread workers (loosely: another
    may take them), with Dask's stealer started or stopped as a run would: the plugin's
    `step-stolen` events, and how many steps ran elsewhere."""
    # Dask balances every second: every 50 ms here, for steps this short.
    with dask.config.set({"distributed.scheduler.work-stealing-interval": "50ms"}):
        scheduler = Scheduler(host="127.0.0.1", port=0, dashboard_address=":0")
    async with scheduler, \
            Worker(scheduler.address, nthreads=1, host="127.0.0.1") as busy, \
            Worker(scheduler.address, nthreads=1, host="127.0.0.1") as idle, \
            Client(scheduler.address, asynchronous=True) as client:
        await client.register_plugin(MembershipReporter(TOPIC))
        assert await start_run_order_afresh(stealing, dask_scheduler=scheduler) is stealing
        futures = client.map(slow, range(12), workers=[busy.address],
                             allow_other_workers=True, pure=False)
        await client.gather(futures)
        ran_elsewhere = sum(idle.address in ws for ws in
                            (await client.who_has(futures)).values())
        events = [message for _, message in scheduler.get_events(TOPIC)
                  if message.get("action") == "step-stolen"]
        return events, ran_elsewhere


def test_the_plugin_says_what_the_stealer_moved_and_a_stopped_stealer_moves_nothing():
    events, elsewhere = asyncio.run(asyncio.wait_for(steals_seen(True), timeout=30))
    assert elsewhere > 0 and len(events) == elsewhere, events
    assert {(e["victim"] != e["thief"]) for e in events} == {True}
    assert all(e["key"].startswith("slow-") for e in events)
    events, elsewhere = asyncio.run(asyncio.wait_for(steals_seen(False), timeout=30))
    assert (events, elsewhere) == ([], 0)


def test_a_replay_runs_without_the_stealer_only_where_its_original_stole_nothing(harness):
    work = Workload(n_tasks=2, n_steps=1, payload_bytes=100, step_seconds=0.01, seed=1)
    schedule = FaultSchedule((), seed=0)
    first = run_schedule(schedule, "dask-raw", {}, work, harness, timeout=60).history
    assert first[0]["stealing"] is True
    still = [e for e in first if e["type"] != "step-stolen"]
    replay = run_schedule(schedule, "dask-raw", {}, work, harness, timeout=60, replay_of=still)
    assert replay.history[0]["stealing"] is False
    stolen = {"seq": still[-1]["seq"], "time": still[-1]["time"], "type": "step-stolen",
              "key": "k", "victim": first[0]["workers"][0], "thief": first[0]["workers"][1]}
    stole = [*still[:-1], stolen, still[-1]]
    replay = run_schedule(schedule, "dask-raw", {}, work, harness, timeout=60, replay_of=stole)
    assert replay.history[0]["stealing"] is True
    after = run_schedule(schedule, "dask-raw", {}, work, harness, timeout=60).history
    assert after[0]["stealing"] is True  # the next run has it back


def test_a_step_stolen_off_a_frozen_worker_is_in_the_history(harness):
    """Three 200 ms steps on each worker, one worker frozen 1.5 s in its first: the others
    go idle, Dask's stealer (every second) asks the frozen one for its queued steps, and
    it gives them up once thawed."""
    work = Workload(n_tasks=9, n_steps=1, payload_bytes=100, step_seconds=0.2, seed=1)
    freeze = Fault("freeze", AtStep(step=0, fraction=0.1, task="t0"), freeze_for=1.5)
    record = run_schedule(FaultSchedule((freeze,), seed=0), "dask-raw", {}, work, harness,
                          timeout=60)
    [fault] = record.events("fault")
    stolen = record.events("step-stolen")
    submitted = {e["key"] for e in record.events("submit")}
    assert stolen, "nothing was stolen off the frozen worker"
    assert {e["victim"] for e in stolen} == {fault["worker"]}
    assert {e["key"] for e in stolen} <= submitted


def test_a_replay_asks_its_originals_steals_off_a_frozen_worker_at_the_thaw(harness):
    """The run above, replayed twice: with Dask's stealer off, the steps the original's
    stealer moved off the frozen worker are moved again, to the same workers by place,
    and only those."""
    work = Workload(n_tasks=9, n_steps=1, payload_bytes=100, step_seconds=0.2, seed=1)
    freeze = Fault("freeze", AtStep(step=0, fraction=0.1, task="t0"), freeze_for=1.5)
    schedule = FaultSchedule((freeze,), seed=0)
    original = run_schedule(schedule, "dask-raw", {}, work, harness, timeout=60)

    def steals(record) -> set[tuple]:
        steps = {e["key"]: e["task_id"] for e in record.events("submit")}
        first = first_workers(record.history)
        return {(steps[e["key"]], first.index(e["thief"])) for e in record.events("step-stolen")}

    assert steals(original) and not ReplayOrder.of(original.history).stealing
    for _ in range(2):
        replay = run_schedule(schedule, "dask-raw", {}, work, harness, timeout=60,
                              replay_of=original.history)
        assert replay.history[0]["stealing"] is False
        assert steals(replay) == steals(original), replay.events("lockstep-diverged")
