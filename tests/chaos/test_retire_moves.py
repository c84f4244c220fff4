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
from chaos.harness.retire_moves import RetireMoves, Role, moved_roles
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
    assert ReplayOrder.of(history).retire_moves == {"f0": _places(history)}


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
