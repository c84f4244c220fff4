"""Schedules as data: JSON round trips, readable printing, seeded generation, validation,
and a Hypothesis strategy that shrinks toward fewer and simpler faults."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, find, given, settings

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
    RunningWorker,
    ScheduleError,
)
from chaos.spec.strategies import fault_schedules

TASKS = ["t0", "t1", "t2", "t3"]

EVERY_SHAPE = FaultSchedule(
    (
        Fault("sigkill", AtStep(step=1, fraction=0.5, task="t2")),
        Fault("exit", ResultReady(step=0, nth=3), RandomWorker(salt=4)),
        Fault("segfault", InputHeld(step=1, task=7), ReplicaHolder(prefer_other=False)),
        Fault("nanny-close", AtTime(seconds=0.25), RunningWorker(task="t1")),
        Fault("freeze", Poisson(mtbf=0.5, seed=9, limit=2), RandomWorker(), freeze_for=1.5),
        Fault("freeze", AtStep(step=0, nth=1), freeze_for=None),
        Fault("retire", AtTime(seconds=0.0), ReplicaHolder(task="t0")),
    ),
    seed=11,
)


def test_every_trigger_role_and_kind_round_trips_through_json():
    text = EVERY_SHAPE.to_json()
    assert FaultSchedule.from_json(text) == EVERY_SHAPE
    assert [f["id"] for f in json.loads(text)["faults"]] == [f"f{i}" for i in range(7)]


def test_a_schedule_saved_to_a_file_loads_back_equal(tmp_path):
    path = EVERY_SHAPE.save(tmp_path / "schedule.json")
    assert FaultSchedule.load(path) == EVERY_SHAPE


def test_a_schedule_prints_one_readable_line_per_fault():
    text = str(EVERY_SHAPE)
    assert text.splitlines()[0] == "FaultSchedule(seed=11): 7 fault(s)"
    assert "f0: sigkill the worker running it, when task 't2' reaches step 1 at 50%" in text
    assert "the 3rd task to start" in text
    assert "freeze forever" in text and "freeze 1.5s" in text


def test_generation_is_a_function_of_the_seed():
    first = FaultSchedule.generate(5, 3, task_ids=TASKS, n_steps=2)
    assert first == FaultSchedule.generate(5, 3, task_ids=TASKS, n_steps=2)
    assert len(first) == 3 and first.seed == 5
    others = {FaultSchedule.generate(seed, 3, task_ids=TASKS, n_steps=2) for seed in range(6, 12)}
    assert first not in others and len(others) > 1


def test_generated_faults_stay_within_the_workload_and_the_kinds_asked_for():
    for seed in range(30):
        schedule = FaultSchedule.generate(seed, 2, task_ids=TASKS, n_steps=2, kinds=["sigkill"])
        for fault in schedule.faults:
            assert fault.kind == "sigkill"
            assert fault.trigger.step in (0, 1)
            assert fault.trigger.task in (None, *TASKS)
            assert fault.trigger.nth is None or 1 <= fault.trigger.nth <= len(TASKS)


def test_poisson_firing_times_are_seeded_and_increasing():
    trigger = Poisson(mtbf=0.2, seed=3, limit=4)
    times = trigger.times()
    assert times == Poisson(mtbf=0.2, seed=3, limit=4).times()
    assert len(times) == 4 and times == sorted(times) and times[0] > 0
    assert times != Poisson(mtbf=0.2, seed=4, limit=4).times()


@pytest.mark.parametrize(
    ("build", "names"),
    [
        (lambda: AtStep(step=0, fraction=1.0, task="t0"), "fraction=1.0"),
        (lambda: AtStep(step=-1, task="t0"), "step=-1"),
        (lambda: AtStep(step=0, task="t0", nth=2), "task='t0', nth=2"),
        (lambda: AtStep(step=0), "task=None, nth=None"),
        (lambda: ResultReady(step=0, nth=0), "nth=0"),
        (lambda: Fault("sigkill", AtTime(1.0), freeze_for=2.0), "freeze_for=2.0"),
        (lambda: Fault("freeze", AtTime(1.0), freeze_for=-1), "freeze_for=-1"),
        (lambda: Fault("melt", AtTime(1.0)), "'melt'"),
        (lambda: Fault("exit", AtStep(step=0, task="t0"), RunningWorker(task="t1")),
         "names a task"),
        (lambda: Poisson(mtbf=0), "mtbf=0"),
        (lambda: FaultSchedule.from_json('{"version": 3, "faults": []}'), "version 3"),
        (lambda: FaultSchedule.from_json(
            '{"faults": [{"kind": "exit", "trigger": {"type": "x"}}]}'), "'x'"),
        (lambda: FaultSchedule.from_json("not json"), "must be JSON"),
    ],
)
def test_a_bad_schedule_is_refused_with_a_message_naming_the_value(build, names):
    with pytest.raises(ScheduleError) as caught:
        build()
    assert names in str(caught.value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fault_schedules(task_ids=TASKS, n_steps=2, max_faults=3))
def test_generated_schedules_are_bounded_and_round_trip(schedule):
    assert 1 <= len(schedule) <= 3
    assert FaultSchedule.from_json(schedule.to_json()) == schedule


def test_the_strategy_shrinks_toward_one_plain_fault():
    smallest = find(fault_schedules(task_ids=TASKS, n_steps=2, max_faults=3),
                    lambda schedule: len(schedule) >= 1,
                    settings=settings(database=None, max_examples=200))
    assert smallest == FaultSchedule(
        (Fault("sigkill", AtStep(step=0, fraction=0.0, task="t0"), RunningWorker()),), seed=0
    )


def test_the_strategy_shrinks_every_fault_it_needs_to_its_plainest_form():
    # Hypothesis does not always delete every spare list element, but each fault left
    # is the plainest of its kind: at step 0, fraction 0, of the first task, on its worker.
    smallest = find(fault_schedules(task_ids=TASKS, n_steps=2, max_faults=3),
                    lambda schedule: any(f.kind == "retire" for f in schedule.faults),
                    settings=settings(database=None, max_examples=500))
    assert smallest.faults[-1].kind == "retire"
    assert {f.kind for f in smallest.faults[:-1]} <= {"sigkill"}
    for fault in smallest.faults:
        assert fault.trigger == AtStep(step=0, fraction=0.0, task="t0")
        assert fault.target == RunningWorker()


def test_a_pinned_schedule_strikes_the_task_its_nth_trigger_resolved_to():
    nth = Fault("sigkill", ResultReady(step=0, nth=2))
    named = Fault("exit", AtStep(step=1, task="t5", fraction=0.5))
    timed = Fault("sigkill", AtTime(1.0))
    schedule = FaultSchedule((nth, named, timed, Fault("freeze", InputHeld(step=1, nth=3))),
                             seed=7)
    pinned = schedule.pinned({"f0": "t1", "f1": "t0", "f2": "t4"})
    assert pinned.faults[0].trigger == ResultReady(step=0, task="t1")
    assert pinned.faults[1:] == schedule.faults[1:]  # named, timed, never resolved: as they were
    assert pinned.seed == 7
