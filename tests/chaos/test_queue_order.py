"""The steps queued on a worker as it finished one (chaos.harness.queue_order): what a
replay reads from its original, the board's wait for them, and, on the shared harness
cluster, that a worker has the step its original started next by the time it needs it."""

from __future__ import annotations

import threading
import time

from chaos import FaultSchedule
from chaos.harness import run_schedule
from chaos.harness.death_race import results_done
from chaos.harness.queue_order import queued_behind
from chaos.harness.replay_order import first_workers
from chaos.probes.turns import mark_submitted, take_turn
from chaos.workload import Workload
from tests.checker.histories import HistoryBuilder

T0, T1 = ("t0", (), 0), ("t1", (), 0)
T1_STEP_1 = ("t1", (0,), 1)


def t1s_step_1_first(*, restarted: bool = False) -> HistoryBuilder:
    """t1's step 0 is done on worker 1 first; the client takes it and submits t1's step
    1, its input on worker 0; then worker 0 finishes t0's step 0 and starts t1's step 1
    (or a restarted worker 0 does)."""
    history = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3"):
        history.emit("scatter", task_id=task, index=[], step=0, key=f"input-{task}")
        history.submit(task)
    first = history.invoke("t0", worker=0)
    history.outcome(history.invoke("t1", worker=1))
    history.emit("step-completed", task_id="t1", index=[], step=0, attempt=1,
                 key="t1-0-1", n_outputs=1)
    history.emit("scatter", task_id="t1", index=[0], step=1, key="input-t1-1")
    history.emit("scatter-placed", keys=["input-t1-1"], workers=[history.workers[0]])
    history.submit("t1", (0,), 1)
    history.outcome(first)
    history.invoke("t1", (0,), 1, worker=0, pid=200 if restarted else None)
    history.end()
    return history


def test_a_result_is_held_for_the_step_its_worker_started_next_if_submitted_before_it():
    history = t1s_step_1_first().events
    assert queued_behind(history, results_done(history)) == (((*T0, 1), (T1_STEP_1, 1)),)
    # t1's result: its worker started nothing after it. A restarted worker 0 is another.
    restarted = t1s_step_1_first(restarted=True).events
    assert queued_behind(restarted, results_done(restarted)) == ()
    # Nor is a step the stealer moved waited for: it may have come by stealing.
    stolen = [*history[:-1], {"seq": 0, "time": 0.0, "type": "step-stolen",
                              "key": submit_key(history, T1_STEP_1)}, history[-1]]
    assert queued_behind(stolen, results_done(stolen)) == ()


def submit_key(history: list[dict], step: tuple) -> str:
    return next(e["key"] for e in history if e["type"] == "submit"
                and (e["task_id"], tuple(e["index"]), e["step"]) == step)


def test_a_step_submitted_after_the_result_was_done_is_not_waited_for():
    history = HistoryBuilder("dask-raw", workers=1)
    history.submit("t0")
    history.outcome(history.invoke("t0"))
    history.submit("t0", (0,), 1)  # the result's own next step, submitted once taken
    history.invoke("t0", (0,), 1)
    history.end()
    assert queued_behind(history.events, results_done(history.events)) == ()


def test_the_result_waits_on_the_board_until_the_submitted_step_is_on_its_worker(tmp_path):
    board = str(tmp_path)
    on_worker: set[str] = set()
    queued = (((*T0, 1), (T1_STEP_1, 1)),)
    outcome: list[list] = []
    turn = threading.Thread(target=lambda: outcome.extend(take_turn(
        board, [], T0, 2.0, queued=queued, has_task=on_worker.__contains__)))
    turn.start()
    time.sleep(0.1)
    mark_submitted(board, (T1_STEP_1, 1), "synthetic_step_1-abc")
    time.sleep(0.1)
    assert turn.is_alive()  # submitted, not yet on the worker
    on_worker.add("synthetic_step_1-abc")
    turn.join(1)
    assert not turn.is_alive() and outcome == []
    # One that never comes is given up after the patience, and said.
    given_up = take_turn(board, [], T1, 0.1, queued=(((*T1, 1), (T1_STEP_1, 2)),),
                         has_task=on_worker.__contains__)
    assert given_up == [["queued", "t1", [0], 1, 2]]


FOUR = Workload(n_tasks=4, n_steps=2, payload_bytes=1_000, step_seconds=0.05, seed=2)


def test_a_worker_has_the_step_its_original_started_next_when_its_step_ends(harness):
    """The made original above: the replay's first worker gets t0's and t3's step 0, and
    t1's step-1 input. Its t0 step ends just after t1's step 0 (its turn), and the client
    submits t1's step 1 only once it took that result, and scattered: without the hold,
    the worker starts t3's step 0, the only one it has. Twice running."""
    original = t1s_step_1_first().events
    for _ in range(2):
        record = run_schedule(FaultSchedule((), seed=0), "dask-raw", {}, FOUR, harness,
                              timeout=60, replay_of=original)
        started = [(e["task_id"], e["step"]) for e in record.events("invoke")
                   if e["worker"] == first_workers(record.history)[0]]
        assert started[:2] == [("t0", 0), ("t1", 1)], started
        assert not [e for e in record.events("lockstep-diverged")
                    if "queued" in str(e.get("missing"))]
