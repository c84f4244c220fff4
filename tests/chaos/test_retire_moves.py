"""Where a retirement's data went (chaos.harness.retire_moves): recorded in the fault
event, read back by a replay, and sent there again, on the harness cluster."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from chaos import Fault, FaultSchedule, ResultReady, RunningWorker
from chaos.harness import run_schedule, scheduler_calls
from chaos.harness.replay_order import ReplayOrder, first_workers
from chaos.harness.retire_moves import RetireMoves, Role, moved_roles, retire_destinations
from chaos.workload import Workload

# Two steps, inputs scattered: t1's step-0 worker holds results and step-1 inputs only
# it has when it is retired, as t1's result is ready.
TWO_STEPS = Workload(n_tasks=6, n_steps=2, payload_bytes=1_000, step_seconds=0.05, seed=5)
RETIRE = FaultSchedule((Fault("retire", ResultReady(step=0, task="t1"), RunningWorker()),),
                       seed=0)


def _retirement(history: list[dict[str, Any]]) -> dict[str, Any]:
    [fault] = [e for e in history if e["type"] == "fault" and e["kind"] == "retire"]
    return fault


def _places(history: list[dict[str, Any]]) -> dict[Role, int]:
    """Where the retirement's keys went, by role: places among the run's first workers."""
    first = first_workers(history)
    return {role: first.index(worker)
            for role, worker in moved_roles(_retirement(history)).items()}


def test_a_retirement_records_where_its_keys_went_and_a_replay_reads_it_back(harness):
    history = run_schedule(RETIRE, "dask-raw", {}, TWO_STEPS, harness, timeout=60).history
    fault = _retirement(history)
    assert fault["moved"], fault
    for kind, task_id, index, step, worker in fault["moved"]:
        assert isinstance(index, list)
        assert kind in ("result", "input") and task_id.startswith("t") and step in (0, 1)
        assert worker in first_workers(history) and worker != fault["worker"]
    lone = {(kind, task_id, tuple(index), step) for kind, task_id, index, step, _ in fault["lone"]}
    assert set(moved_roles(fault)) <= lone, fault
    assert ReplayOrder.of(history).retire_moves == {"f0": _places(history)}


def test_a_key_no_one_held_when_asked_went_to_the_first_other_worker_whose_removal_lost_it():
    """Nightly --seed 8642's `s006`: a retirement sent three inputs to a worker a nanny
    close took down 2 ms later, before the retirement returned and asked where they went.
    The removal that lost a key says where it went; one before the retirement fired, or
    the victim's own, does not."""
    fault = {"type": "fault", "fault_id": "f0", "kind": "retire", "worker": "A",
             "fired_at": 10.0, "time": 10.5, "moved": [["input", "t1", [], 0, "B"]],
             "lone": [["input", "t1", [], 0, "k1"], ["input", "t4", [], 0, "k4"],
                      ["result", "t7", [0], 1, "k7"], ["input", "t5", [], 0, "k5"]]}
    history = [
        {"type": "worker-removed", "time": 9.0, "worker": "C", "lost_keys": ["k5"]},
        {"type": "worker-removed", "time": 10.1, "worker": "A", "lost_keys": ["k5"]},
        {"type": "worker-removed", "time": 10.2, "worker": "C", "lost_keys": ["k1", "k4"],
         "lost_computed_keys": ["k7"]},
        fault,
        {"type": "worker-removed", "time": 11.0, "worker": "B", "lost_keys": ["k4"]},
    ]
    assert retire_destinations(history) == {"f0": {
        ("input", "t1", (), 0): "B", ("input", "t4", (), 0): "C", ("result", "t7", (0,), 1): "C"}}


def test_a_replay_sends_a_retirements_keys_where_its_original_sent_them(harness):
    """Dask sends each key to the worker with the least memory by its measure, RSS
    included. Here the original is made to say the other worker (the one Dask did not
    pick), and the replay follows it."""
    original = run_schedule(RETIRE, "dask-raw", {}, TWO_STEPS, harness, timeout=60).history
    fault = _retirement(original)
    others = [w for w in first_workers(original) if w != fault["worker"]]
    assert len(others) == 2, others
    edited = copy.deepcopy(original)
    _retirement(edited)["moved"] = [[*move[:4], others[1 - others.index(move[4])]]
                                    for move in fault["moved"]]
    wanted = _places(edited)
    for _ in range(2):
        replay = run_schedule(RETIRE, "dask-raw", {}, TWO_STEPS, harness, timeout=60,
                              replay_of=edited).history
        got = _places(replay)
        common = set(got) & set(wanted)
        assert common, (got, wanted)
        assert {role: got[role] for role in common} == {role: wanted[role] for role in common}


def test_a_question_the_scheduler_does_not_answer_is_given_up_within_the_bound(
        harness, monkeypatch):
    """The coordinator asks the scheduler who holds an input, and what a retirement moves,
    as it decides: unbounded, a scheduler a fault killed held every held probe of the run
    until the run's timeout."""

    async def never_answers(*args: Any, dask_scheduler: Any = None) -> None:
        await asyncio.sleep(3)  # on the scheduler: its handler outlives the question

    monkeypatch.setattr(scheduler_calls, "CALL_TIMEOUT", 0.3)
    monkeypatch.setattr(scheduler_calls, "dependency_holders", never_answers)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        harness.input_holders("any-key")
    moves = RetireMoves(harness.client, history=None, frozen=list)  # type: ignore[arg-type]
    assert moves._call(never_answers) is None  # recorded as nothing; the retire goes on
    assert time.monotonic() - started < 1.5


class _Events:
    """A history writer's events, as RetireMoves reads them."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events


def test_an_input_scattered_for_a_step_not_yet_submitted_has_that_steps_role():
    """Nightly --seed 2020's `s037`: the retirement asked what its victim held 0.4 ms
    after the client submitted t2's next step, before the scheduler had it: the input
    just scattered there had no dependent yet."""
    history = _Events([
        {"type": "submit", "time": 1.0, "task_id": "t1", "index": [], "step": 0, "key": "s1"},
        {"type": "scatter", "time": 2.0, "task_id": "t2", "index": [0], "step": 1, "key": "in2"},
    ])
    moves = RetireMoves(None, history, frozen=list)  # type: ignore[arg-type]
    roles = moves._roles({"s1": [], "in2": [], "in1": ["s1"], "stray": []})
    assert roles == {"s1": ("result", "t1", (), 0), "in2": ("input", "t2", (0,), 1),
                     "in1": ("input", "t1", (), 0)}


def test_an_input_a_scatter_put_on_the_victim_as_it_was_retired_is_recorded_too():
    """The same run recorded again: t1's next input was placed on the victim 6 ms after
    the retirement asked what it held, and the retirement moved it on."""
    history = _Events([
        {"type": "scatter", "time": 1.0, "task_id": "t0", "index": [0], "step": 1, "key": "in0"},
        {"type": "scatter-placed", "time": 1.1, "keys": ["in0"], "workers": ["A"]},
        {"type": "scatter", "time": 5.0, "task_id": "t1", "index": [0], "step": 1, "key": "in1"},
        {"type": "scatter", "time": 5.0, "task_id": "t2", "index": [0], "step": 1, "key": "in2"},
    ])
    moves = RetireMoves(None, history, frozen=list)  # type: ignore[arg-type]
    moves._asked_at["A"] = 5.5
    history.events += [{"type": "scatter-placed", "time": 6.0, "keys": ["in1", "in2"],
                        "workers": ["A", "B"]}]
    assert moves._scattered_since("A") == {"in1": ("input", "t1", (0,), 1)}
    assert moves._scattered_since("B") == {}  # never retired


def test_where_an_input_scattered_onto_the_victim_as_it_was_retired_went_is_recorded(harness):
    """As the test above, asked of the harness's scheduler: the input is now held by
    another worker, where the retirement moved it."""
    holder = sorted(harness.live_workers())[0]
    [held] = harness.client.scatter([b"input"], workers=[holder])
    history = _Events([{"type": "scatter", "time": 1.0, "task_id": "t1", "index": [0],
                        "step": 1, "key": held.key}])
    moves = RetireMoves(harness.client, history, frozen=list)  # type: ignore[arg-type]
    moves._asked_at["tcp://retired:1"] = 1.5
    history.events.append({"type": "scatter-placed", "time": 2.0, "keys": [held.key],
                           "workers": ["tcp://retired:1"]})
    recorded = moves.after("tcp://retired:1", {})
    assert recorded["moved"] == [["input", "t1", [0], 1, holder]], recorded
    assert recorded["lone"] == [["input", "t1", [0], 1, held.key]]
