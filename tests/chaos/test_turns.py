"""The board on which a lockstep replay's results keep to their original's order
(chaos.probes.turns): real files, real threads standing in for worker processes."""

from __future__ import annotations

import shutil
import threading
import time
import uuid

import pytest

from chaos.probes import ProbePlan, probed, turns
from chaos.probes.turns import fault_entry, mark_done, take_turn

ORDER = (("t0", (), 0, 1), ("t1", (), 0, 1), ("t2", (), 0, 1))


def finish(board: str, key: tuple, done: list, order: tuple = ORDER, after: float = 0.0):
    """Take `key`'s turn on a thread of its own, `after` seconds from now."""
    def body() -> None:
        time.sleep(after)
        done.append((key[0], take_turn(board, order, key, patience=5.0)))

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_results_that_reach_their_point_out_of_order_finish_in_the_originals(tmp_path):
    done: list = []
    threads = [finish(str(tmp_path), ("t2", (), 0), done),
               finish(str(tmp_path), ("t1", (), 0), done, after=0.02),
               finish(str(tmp_path), ("t0", (), 0), done, after=0.05)]
    for thread in threads:
        thread.join(10)
    assert all(given_up == [] for _, given_up in done) and len(done) == 3
    # In the order of their done marks (a thread may return a little late under load).
    marked = sorted(ORDER, key=lambda entry: turns._done_at(tmp_path, entry))
    assert [entry[0] for entry in marked] == ["t0", "t1", "t2"]


def test_a_result_finishes_no_sooner_than_in_flight_after_the_one_before_it(tmp_path):
    # The one before it still travels to the scheduler: it must not be overtaken.
    take_turn(str(tmp_path), ORDER, ("t0", (), 0), patience=5.0)
    take_turn(str(tmp_path), ORDER, ("t1", (), 0), patience=5.0)
    # The marks' own times: the test's clock readings may lag them under load.
    gap = turns._done_at(tmp_path, ORDER[1]) - turns._done_at(tmp_path, ORDER[0])
    assert gap >= turns.IN_FLIGHT, gap


def test_a_result_waits_until_the_client_took_the_one_before_it(tmp_path, monkeypatch):
    # A fixed delay alone let results overtake each other on their way on a loaded host
    # (a CI run of test_lockstep); the harness marks a result arrived as it records it.
    monkeypatch.setattr(turns, "ARRIVAL_WAIT", 2.0)
    board = str(tmp_path)
    take_turn(board, ORDER, ("t0", (), 0), patience=5.0)
    client = threading.Timer(0.1, turns.mark_arrived, (board, ORDER[0]))
    client.start()
    take_turn(board, ORDER, ("t1", (), 0), patience=5.0)
    client.join()
    gap = turns._done_at(tmp_path, ORDER[1]) - turns._done_at(tmp_path, ORDER[0])
    assert 0.1 <= gap < 1.0, gap  # after the arrival, and at once rather than at the bound


def test_a_result_close_behind_waits_until_the_scheduler_holds_the_one_before_it(tmp_path,
                                                                                monkeypatch):
    """Nightly --seed 9753's `s009`: t1's worker, busy, sent its result 10 ms after its
    thread finished it, and t2, done 4 ms after t1 on another worker, overtook it."""
    monkeypatch.setattr(turns, "ARRIVAL_WAIT", 2.0)
    board = str(tmp_path)
    take_turn(board, ORDER, ("t0", (), 0), patience=5.0, dask_key="step-t0")
    held: set[str] = set()
    asked: list[str] = []

    def scheduler_has(key: str) -> bool:
        asked.append(key)
        return key in held

    scheduler = threading.Timer(0.1, held.add, ("step-t0",))
    scheduler.start()
    take_turn(board, ORDER, ("t1", (), 0), patience=5.0, close_behind=(ORDER[1],),
              behind_taken=(ORDER[1],), dask_key="step-t1", scheduler_has=scheduler_has)
    scheduler.join()
    gap = turns._done_at(tmp_path, ORDER[1]) - turns._done_at(tmp_path, ORDER[0])
    assert 0.1 <= gap < 1.0 and set(asked) == {"step-t0"}, (gap, set(asked))
    assert turns._done_key(tmp_path, ORDER[1]) == "step-t1"
    # One the scheduler never holds (lost with its worker) is waited for up to the bound.
    monkeypatch.setattr(turns, "ARRIVAL_WAIT", 0.2)
    take_turn(board, ORDER, ("t2", (), 0), patience=5.0, close_behind=(ORDER[2],),
              behind_taken=(ORDER[2],), dask_key="step-t2", scheduler_has=scheduler_has)
    gap = turns._done_at(tmp_path, ORDER[2]) - turns._done_at(tmp_path, ORDER[1])
    assert 0.2 <= gap < 1.0 and asked[-1] == "step-t1", (gap, asked[-1])
    # Nor one the client took, and may have let go: the scheduler forgets it then.
    turns.mark_arrived(board, ORDER[2])
    monkeypatch.setattr(turns, "ARRIVAL_WAIT", 2.0)
    started = time.monotonic()
    t3 = ("t3", (), 0, 1)
    take_turn(board, (*ORDER, t3), t3[:3], patience=5.0, close_behind=(t3,),
              behind_taken=(t3,), scheduler_has=lambda key: False)
    assert time.monotonic() - started < 0.5


def test_a_result_close_behind_one_the_client_never_took_does_not_ask_the_scheduler(tmp_path):
    board = str(tmp_path)
    take_turn(board, ORDER, ("t0", (), 0), patience=5.0, dask_key="step-t0")
    take_turn(board, ORDER, ("t1", (), 0), patience=5.0, close_behind=(ORDER[1],),
              scheduler_has=lambda key: pytest.fail(f"asked for {key}"))


def test_a_done_mark_seen_before_its_time_is_written_still_waits_for_the_client(tmp_path):
    # A waiter may see a done mark between its creation and the write of its time (a
    # fresh clone's run of test_lockstep saw t0 overtake t1): read as time 0, the one
    # after it stopped waiting for the client at once.
    board = str(tmp_path)
    take_turn(board, ORDER, ("t0", (), 0), patience=5.0)
    turns.mark_arrived(board, ORDER[0])
    turns._mark(tmp_path, ORDER[1], "done").touch()  # t1's mark, its time not yet written
    client = threading.Timer(0.1, turns.mark_arrived, (board, ORDER[1]))
    started = time.monotonic()
    client.start()
    take_turn(board, ORDER, ("t2", (), 0), patience=5.0)
    waited = time.monotonic() - started
    client.join()
    assert waited >= 0.1, waited


def test_a_result_the_original_never_had_waits_for_nobody(tmp_path):
    started = time.monotonic()
    assert take_turn(str(tmp_path), ORDER, ("t9", (), 0), patience=5.0) == []
    assert time.monotonic() - started < 0.5


def test_a_second_attempt_of_a_step_takes_the_next_ordinal(tmp_path):
    order = (("t0", (), 0, 1), ("t1", (), 0, 1), ("t0", (), 0, 2))
    assert take_turn(str(tmp_path), order, ("t0", (), 0), patience=5.0) == []
    # The second t0 is third in the order: it waits for t1, which never comes.
    assert take_turn(str(tmp_path), order, ("t0", (), 0), patience=0.2) == [["t1", [], 0, 1]]


def test_predecessors_that_never_come_are_given_up_after_patience_and_reported(tmp_path):
    started = time.monotonic()
    given_up = take_turn(str(tmp_path), ORDER, ("t2", (), 0), patience=0.3)
    waited = time.monotonic() - started
    assert given_up == [["t0", [], 0, 1], ["t1", [], 0, 1]]
    assert 0.3 <= waited < 1.0
    # Marked done by the one that gave up: nobody waits for them again.
    started = time.monotonic()
    assert take_turn(str(tmp_path), (*ORDER, ("t3", (), 0, 1)), ("t3", (), 0), 5.0) == []
    assert time.monotonic() - started < 0.5


def test_a_result_after_a_fault_waits_until_the_harness_marks_it_settled(tmp_path, monkeypatch):
    monkeypatch.setattr(turns, "FAULT_PATIENCE", 5.0)
    order = (fault_entry("f0"), ("t0", (), 0, 1))
    done: list = []
    thread = finish(str(tmp_path), ("t0", (), 0), done, order)
    time.sleep(0.3)
    assert done == []
    mark_done(str(tmp_path), fault_entry("f0"))
    thread.join(5)
    assert done == [("t0", [])]


def test_a_fault_that_never_settles_holds_the_results_after_it_for_fault_patience(
        tmp_path, monkeypatch):
    monkeypatch.setattr(turns, "FAULT_PATIENCE", 0.5)
    order = (fault_entry("f0"), ("t0", (), 0, 1))
    started = time.monotonic()
    # A result's own patience (0.1 s) does not apply: a shutdown may take seconds to land.
    given_up = take_turn(str(tmp_path), order, ("t0", (), 0), patience=0.1)
    assert 0.5 <= time.monotonic() - started < 1.5
    assert given_up == [["fault f0", [], None, 1]]


def test_a_result_that_comes_after_its_replay_ended_goes_on_at_once(tmp_path):
    # The harness removes the board when the run ends; a late result must not fail.
    assert take_turn(str(tmp_path / "gone"), ORDER, ("t2", (), 0), patience=5.0) == []


def test_a_result_waiting_as_its_replay_ends_goes_on_at_once(tmp_path, monkeypatch):
    """Left waiting for a fault's settling when the replay ended, a result would wait out
    the fault's patience (10 s), its worker's only thread taken from the next run. So
    too a result waiting for a step to reach its worker (`queued`)."""
    monkeypatch.setattr(turns, "FAULT_PATIENCE", 5.0)
    board = tmp_path / "board"
    board.mkdir()
    order = (fault_entry("f0"), ("t0", (), 0, 1))
    done: list = []
    thread = finish(str(board), ("t0", (), 0), done, order)
    queued = threading.Thread(target=lambda: done.append(("t1", take_turn(
        str(board), [], ("t1", (), 0), 5.0, queued=((("t1", (), 0, 1), (("t2", (), 0), 1)),),
        has_task=lambda key: False))))
    queued.start()
    time.sleep(0.2)
    assert done == []
    started = time.monotonic()
    shutil.rmtree(board)
    thread.join(2)
    queued.join(2)
    assert time.monotonic() - started < 0.5 and sorted(done) == [("t0", []), ("t1", [])]


@pytest.mark.parametrize(("shutdowns", "reached"), [("closed_short", "closing"),
                                                    ("after_shutdown", "stopped")])
def test_a_step_a_shutdown_reached_waits_until_it_reaches_its_worker(tmp_path, monkeypatch,
                                                                      shutdowns, reached):
    """A step a nanny's close cut short waits until its worker closes; a result done as
    its worker shut down (nightly --seed 2020's `s037`: a worker still running started
    its next queued step, which one a retirement had reached did not), until its worker
    stops running. Or until the shutdown settled (it struck elsewhere, or was skipped),
    or its patience ran out, said."""
    monkeypatch.setattr(turns, "FAULT_PATIENCE", 0.3)
    board = str(tmp_path)
    closed = ((("t9", (), 0, 1), fault_entry("f0")), (("t8", (), 0, 1), fault_entry("f1")))
    closing = threading.Event()
    done: list = []
    thread = threading.Thread(target=lambda: done.append(take_turn(
        board, ORDER, ("t9", (), 0), 5.0, **{shutdowns: closed, reached: closing.is_set})))
    thread.start()
    time.sleep(0.1)
    assert done == []
    closing.set()
    thread.join(1)
    assert done == [[]]
    mark_done(board, fault_entry("f1"))
    never = threading.Event().is_set
    started = time.monotonic()
    assert take_turn(board, ORDER, ("t8", (), 0), 5.0, **{shutdowns: closed, reached: never}) == []
    assert time.monotonic() - started < 0.1
    assert take_turn(board, ORDER, ("t9", (), 0), 5.0,  # its 2nd result
                     **{shutdowns: closed, reached: never}) == []
    third = ((("t9", (), 0, 3), fault_entry("f2")),)
    assert take_turn(board, [], ("t9", (), 0), 5.0, **{shutdowns: third, reached: never}
                     ) == [["fault f2", [], None, 1]]
    assert time.monotonic() - started >= 0.3


def test_a_step_a_kill_cut_short_waits_for_that_kill_and_nobody_waits_for_it(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setattr(turns, "FAULT_PATIENCE", 5.0)
    board = str(tmp_path)
    cut = ((("t9", (), 0, 1), fault_entry("f0")),)
    done: list = []
    thread = threading.Thread(target=lambda: done.append(
        take_turn(board, ORDER, ("t9", (), 0), patience=5.0, cut_short=cut)))
    thread.start()
    time.sleep(0.3)
    assert done == []  # at its result point, as its worker was when the kill came
    mark_done(board, fault_entry("f0"))
    thread.join(5)
    assert done == [[]]
    # Its second attempt (the original's cut one was its first) waits for nobody; nor
    # does a result of the order wait for it.
    started = time.monotonic()
    assert take_turn(board, ORDER, ("t9", (), 0), patience=5.0, cut_short=cut) == []
    assert take_turn(board, ORDER, ("t0", (), 0), patience=5.0, cut_short=cut) == []
    assert time.monotonic() - started < 0.5


def _ask_the_scheduler(keys: list[str]) -> list[bool]:
    from distributed import get_worker

    from chaos.probes.worker import _scheduler_has

    return [_scheduler_has(get_worker(), key) for key in keys]


def test_a_task_asks_the_scheduler_whether_it_holds_a_key(harness):
    """The wait above, on a real worker: from the task's own thread."""
    [held] = harness.client.scatter([b"input"])
    asked = harness.client.submit(_ask_the_scheduler, [held.key, "no-such-key"], pure=False)
    assert asked.result(timeout=10) == [True, False]


def _as_is(payload, **task):
    return payload


def test_a_step_on_a_worker_keeps_to_the_waits_its_plan_gives(harness, tmp_path):
    """The plan's waits reach the probe on a real worker. A result close behind one the
    client took waits for the scheduler to hold that one: here it never does, so up to
    ARRIVAL_WAIT after it was done. One done as its worker shut down in the original
    waits until its worker stops running (this one keeps running), or its fault settled."""
    board = str(tmp_path)
    first, behind, shut = ("t0", (), 0, 1), ("t1", (), 0, 1), ("t2", (), 0, 1)
    take_turn(board, (first, behind), first[:3], 5.0, dask_key="a-key-never-held")
    plan = ProbePlan(uuid.uuid4().hex, topic=harness.topic, result_order=(first, behind),
                     turn_board=board, close_behind=(behind,), behind_taken=(behind,),
                     after_shutdown=((shut, fault_entry("f0")),))
    [protocol] = probed([_as_is], plan)
    step = harness.client.submit(protocol, 1, task_id="t1", pure=False)
    step.result(timeout=30)
    gap = turns._done_at(tmp_path, behind) - turns._done_at(tmp_path, first)
    assert gap >= turns.ARRIVAL_WAIT - 0.01, gap
    assert turns._done_key(tmp_path, behind) == step.key  # for the result after it to ask
    shutting = harness.client.submit(protocol, 2, task_id="t2", pure=False)
    time.sleep(0.5)
    assert not shutting.done()
    mark_done(board, fault_entry("f0"))
    assert shutting.result(timeout=10) == 2
