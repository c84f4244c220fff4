"""Dask's work stealing (chaos.harness.steal_order): the scheduler plugin says what the
stealer moved, and a lockstep replay of an original whose stealer moved nothing runs
without it."""

from __future__ import annotations

import asyncio
import time

import dask
from distributed import Client, Scheduler, Worker

from chaos import AtStep, Fault, FaultSchedule
from chaos.harness import run_schedule
from chaos.harness.membership import MembershipReporter
from chaos.harness.scheduler_calls import start_run_order_afresh
from chaos.harness.steal_order import stealing_in_replay
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
    assert not stealing_in_replay(original(stealing=True, stole=False))
    assert stealing_in_replay(original(stealing=True, stole=True))
    assert stealing_in_replay(original(stealing=None, stole=False))  # recorded before
    assert stealing_in_replay(original(stealing=False, stole=False))  # configured off


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
