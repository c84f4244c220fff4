"""Lockstep replay (chaos.harness.lockstep): what a replay reads from its original, and
how it holds the client and the faults to it. The last test replays on the shared
harness cluster an original whose results came in an order no free run would give."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from chaos import AtStep, AtTime, Fault, FaultSchedule, RandomWorker, ResultReady
from chaos.harness import run_schedule
from chaos.harness.arming import probe_plan
from chaos.harness.lockstep import DEFAULT_PATIENCE, Lockstep
from chaos.harness.replay_order import ReplayOrder
from chaos.harness.scatter_race import Meeting, ScatterRace
from chaos.history import HistoryWriter
from chaos.probes import turns
from chaos.probes.turns import fault_entry
from chaos.workload import Workload
from tests.checker.histories import HistoryBuilder


def two_tasks_then_a_kill() -> list[dict]:
    """t1's result comes first but the client takes t0's first; f0 fires after the client
    took t0, and is noticed after it took t1; t2 finishes after the notice; f1 fires by
    the clock, f2 fires and is noticed with no landmark in between."""
    history = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2"):
        history.submit(task)
    x0 = history.invoke("t0", worker=0)
    x1 = history.invoke("t1", worker=1)
    x2 = history.invoke("t2", worker=2)
    history.outcome(x1)
    history.outcome(x0, seconds=0.001)
    history.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="k0",
                 n_outputs=1)
    history.emit("fault", fault_id="f0", kind="sigkill",
                 trigger={"type": "result-ready", "step": 0, "task_id": "t2"},
                 worker=history.workers[2], pid=102, fired_at=history.clock,
                 landed_at=history.clock, noticed_at=history.clock + 0.015)
    history.emit("step-completed", task_id="t1", index=[], step=0, attempt=1, key="k1",
                 n_outputs=1)
    history.outcome(x2, seconds=0.05)
    history.emit("fault", fault_id="f1", kind="sigkill", trigger={"type": "at-time", "at": 1},
                 worker=history.workers[0], pid=100, fired_at=history.clock,
                 landed_at=history.clock, noticed_at=None)
    history.emit("fault", fault_id="f2", kind="sigkill",
                 trigger={"type": "at-step", "step": 0, "task_id": "t2"},
                 worker=history.workers[1], pid=101, fired_at=history.clock,
                 landed_at=history.clock, noticed_at=history.clock + 0.001)
    history.end()
    return history.events


def replaying(original: list[dict], *, patience: float = DEFAULT_PATIENCE,
            board: bool = False) -> tuple[Lockstep, HistoryWriter]:
    """A lockstep replay of `original`, and the history it keeps to it."""
    lockstep = Lockstep(ReplayOrder.of(original), patience=patience, shared_board=board)
    writer = HistoryWriter()
    lockstep.start(writer)
    return lockstep, writer


def test_a_replay_takes_its_board_away_even_as_results_still_come():
    """Results still coming as the replay ends (a thawed worker's, say) put their claims
    in the board as it is removed: an rmtree alone left the folder, and the next such
    result waited there out a fault's patience (10 s) into the next run."""
    lockstep = Lockstep(ReplayOrder.of(two_tasks_then_a_kill()))
    board = lockstep.board
    assert board is not None
    ended = threading.Event()

    def results(worker: int) -> None:
        n = 0
        while not ended.is_set():
            n += 1
            turns.take_turn(board, [], (f"w{worker}-t{n}", (), 0), 0.1)

    workers = [threading.Thread(target=results, args=(n,)) for n in range(2)]
    for worker in workers:
        worker.start()
    time.sleep(0.1)
    lockstep.stop()
    ended.set()
    for worker in workers:
        worker.join(2)
    assert not Path(board).exists() and not Path(f"{board}.gone").exists()


def test_the_order_is_the_clients_where_it_took_a_result_and_a_faults_notice_in_its_place():
    order = ReplayOrder.of(two_tasks_then_a_kill())
    assert order.results == (("t0", (), 0, 1), ("t1", (), 0, 1), fault_entry("f0"),
                             ("t2", (), 0, 1), fault_entry("f1"), fault_entry("f2"))
    # Three submits and t0's result came before f0 fired; the clock's fault keeps to it.
    assert order.fault_turns == {"f0": 4, "f2": 5}
    # Five landmarks (t1 taken) came before f0's notice, five before f2's too (nothing
    # came between its firing and its notice): the sixth waits for each.
    assert order.notice_turns == {"f0": 5, "f2": 5}


def landmark(writer: HistoryWriter, task: str, kind: str = "submit") -> None:
    writer.emit(kind, task_id=task, index=[], step=0, attempt=1, key=task, reason="new")


def test_the_client_waits_at_a_faults_last_landmark_until_the_fault_fires():
    lockstep, writer = replaying(two_tasks_then_a_kill())
    for task in ("t0", "t1", "t2"):
        landmark(writer, task)
    passed = threading.Event()

    def client() -> None:
        writer.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="k0")
        passed.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert not passed.wait(0.2)  # held: f0 fired right after this landmark in the original
    assert not lockstep.too_early("f0", time.monotonic())
    lockstep.fired("f0")
    assert passed.wait(2)
    thread.join(2)
    lockstep.stop()


def test_the_client_goes_on_after_its_last_landmark_before_a_notice_and_waits_at_its_next():
    """What the client did after it took t1 (its last landmark before f0's notice in the
    original) raced the notice there: a scatter to the dying worker, say. So it is not
    held after t1, but its next landmark is, until the notice (f2's too), and is timed
    after it."""
    lockstep, writer = replaying(two_tasks_then_a_kill())
    for task in ("t0", "t1", "t2"):
        landmark(writer, task)
    for fault_id in ("f0", "f2"):
        lockstep.fired(fault_id)
    went_on, wrote = threading.Event(), threading.Event()

    def client() -> None:
        for task in ("t0", "t1"):
            writer.emit("step-completed", task_id=task, index=[], step=0, attempt=1, key=task)
        went_on.set()
        landmark(writer, "t3")
        wrote.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert went_on.wait(2)  # not held at t1
    assert not wrote.wait(0.2)  # held before its next landmark
    lockstep.settled("f0")
    assert not wrote.wait(0.1)  # f2's notice too
    noticed = time.time()
    lockstep.settled("f2")
    assert wrote.wait(2)
    thread.join(2)
    assert writer.events[-1]["task_id"] == "t3" and writer.events[-1]["time"] >= noticed
    lockstep.stop()


def test_a_notice_that_never_comes_holds_the_client_once_however_many_landmarks_follow(
        monkeypatch):
    """A replay that left its original writes landmarks its original never had, so it
    stays at f0's notice turn: each of them would wait out the fault's patience again,
    and a graceful fault's 10 s, met by a few dozen landmarks, would hang the run."""
    monkeypatch.setattr("chaos.harness.lockstep.FAULT_PATIENCE", 0.2)
    lockstep, writer = replaying(two_tasks_then_a_kill())
    for task in ("t0", "t1", "t2"):
        landmark(writer, task)
    for fault_id in ("f0", "f2"):
        lockstep.fired(fault_id)
    for task in ("t0", "t1"):
        writer.emit("step-completed", task_id=task, index=[], step=0, attempt=1, key=task)
    started = time.monotonic()
    for task in ("x0", "x1", "x2", "x3", "x4"):  # none of them the original's
        landmark(writer, task)
    assert time.monotonic() - started < 0.2 * 2 * 2  # f0's and f2's patience, once each
    diverged = [e["waiting"] for e in writer.events if e["type"] == "lockstep-diverged"]
    assert diverged == ["the client for fault f0 to be noticed",
                        "the client for fault f2 to be noticed"]
    lockstep.stop()


def test_each_result_the_client_takes_is_marked_arrived_on_the_board():
    # The next result in the original's order waits for that mark (chaos.probes.turns).
    lockstep, writer = replaying(two_tasks_then_a_kill(), patience=0.3, board=True)
    assert lockstep.board is not None
    first = ("t1", (), 0, 1)
    turns.take_turn(lockstep.board, [first, ("t1", (), 0, 2)], ("t1", (), 0), patience=0.3)
    for attempt in (1, 2):
        writer.emit("step-completed", task_id="t1", index=[], step=0, attempt=attempt,
                    key=f"k{attempt}")
    assert turns._arrived(Path(lockstep.board), first)
    assert turns._arrived(Path(lockstep.board), ("t1", (), 0, 2))  # the second one taken
    lockstep.stop()


def test_a_fault_is_too_early_until_the_client_has_done_what_it_had_then():
    lockstep, writer = replaying(two_tasks_then_a_kill(), patience=0.3)
    hit = time.monotonic()
    landmark(writer, "t0")
    assert lockstep.too_early("f0", hit)
    # Nothing more comes: past `patience` the replay has left its original, and says so.
    time.sleep(0.35)
    assert not lockstep.too_early("f0", hit)
    diverged = [e for e in writer.events if e["type"] == "lockstep-diverged"]
    assert diverged and diverged[0]["waiting"] == "fault f0"
    assert ["submit", "t1", [], 0] in diverged[0]["missing"]
    lockstep.stop()


def results_racing_a_kill() -> list[dict]:
    """f0 kills worker 0 just after it finished t1 and t2: the client took t1 after f0
    fired (after its notice, even), never t2. t0 and t9, done there long before, and t3,
    done on worker 1, raced nothing."""
    history = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3"):
        history.submit(task)
    history.outcome(history.invoke("t0", worker=0))
    history.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="k0")
    history.outcome(history.invoke("t9", worker=0))  # never taken, long before: no race
    history.wait(0.1)
    x1, x2, x3 = (history.invoke(task, worker=w) for task, w in (("t1", 0), ("t2", 0), ("t3", 1)))
    for execution in (x1, x2, x3):
        history.outcome(execution, seconds=0.001)
    history.emit("fault", fault_id="f0", kind="segfault",
                 trigger={"type": "result-ready", "step": 0, "task_id": "t2"},
                 worker=history.workers[0], pid=100, fired_at=history.clock,
                 landed_at=history.clock + 0.001, noticed_at=history.clock + 0.005)
    for task in ("t1", "t3"):
        history.emit("step-completed", task_id=task, index=[], step=0, attempt=1, key=task)
    history.end()
    return history.events


def test_a_result_that_raced_its_workers_death_reaches_the_client_or_dies_as_it_did():
    order = ReplayOrder.of(results_racing_a_kill())
    assert order.death_races.taken == {"f0": (("t1", (), 0, 1),)}
    assert order.death_races.lost == {("t2", (), 0, 1): "f0"}
    # Four submits and t0 before f0 fired; the client takes t1 before its notice here.
    assert order.fault_turns == {"f0": 5}
    assert order.notice_turns == {"f0": 6}


def test_the_steps_a_kill_cut_short_are_those_started_on_its_victim_and_never_done():
    history = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3", "t4", "t5"):
        history.submit(task)
    history.outcome(history.invoke("t0", worker=0))
    history.invoke("t0", worker=1)  # a second run of t0, cut short: its second result
    history.invoke("t1", worker=1)
    history.outcome(history.invoke("t2", worker=1))  # done before the kill
    history.invoke("t3", worker=2)  # on a worker no fault hit
    history.emit("fault", fault_id="f0", kind="sigkill", trigger={"type": "at-time", "at": 1},
                 worker=history.workers[1], pid=101, fired_at=history.clock,
                 landed_at=history.clock, noticed_at=history.clock + 0.005)
    history.invoke("t4", worker=1)  # on the worker back at its address: the next kill's
    history.invoke("t1", worker=1)  # cut short again: its first cut is the one replayed
    history.emit("fault", fault_id="f1", kind="freeze", trigger={"type": "at-time", "at": 2},
                 worker=history.workers[2], pid=102, fired_at=history.clock,
                 landed_at=history.clock, noticed_at=None)  # a freeze loses nothing
    history.emit("fault", fault_id="f2", kind="segfault", trigger={"type": "at-time", "at": 3},
                 worker=history.workers[1], pid=103, fired_at=history.clock,
                 landed_at=history.clock, noticed_at=history.clock + 0.1)
    history.invoke("t5", worker=1)  # after every kill
    history.emit("fault", fault_id="f3", kind="nanny-close",
                 trigger={"type": "at-time", "at": 4}, worker=history.workers[2], pid=102,
                 fired_at=history.clock, landed_at=history.clock + 0.05,
                 noticed_at=history.clock + 0.06)  # cut t3 short: held for its close
    history.end()
    races = ReplayOrder.of(history.events).death_races
    assert races.cut_short == {
        ("t0", (), 0, 2): "f0", ("t1", (), 0, 1): "f0", ("t4", (), 0, 1): "f2"}
    assert races.closed_short == {("t3", (), 0, 1): "f3"}


def test_the_results_done_on_a_graceful_shutdowns_victim_as_it_shut_down():
    """Nightly --seed 2020's `s037`: a retirement fired 7 ms before its victim's step
    ended; the victim, shutting down, started no other step."""
    history = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3", "t4"):
        history.submit(task)
    history.outcome(history.invoke("t9", worker=0))  # done long before it fired
    history.wait(0.1)
    runs = {task: history.invoke(task, worker=n) for n, task in enumerate(("t0", "t1", "t2"))}
    history.outcome(runs["t0"])  # done just before it fired
    history.wait(0.01)
    retire = history.fault(worker=0, kind="retire", fault_id="f0", noticed=0.2)
    freeze = history.fault(worker=1, kind="freeze", fault_id="f1", noticed=0.2)
    history.outcome(runs["t1"], seconds=0.01)  # on a frozen worker: no shutdown
    history.outcome(runs["t2"], seconds=0.01)  # on a worker no shutdown hit
    history.outcome(history.invoke("t3", worker=0), seconds=0.01)  # done as it shut down
    history.wait(0.2)
    history.outcome(history.invoke("t4", worker=0))  # after its notice: a worker anew
    history.end()
    assert history.events[retire]["noticed_at"] > history.events[freeze]["time"]
    races = ReplayOrder.of(history.events).death_races
    assert races.after_shutdown == {("t3", (), 0, 1): "f0"}
    assert races.before_shutdown == {"f0": (("t0", (), 0, 1),)}
    # The replay's probes are told, with the fault's entry on the board to settle.
    lockstep = Lockstep(ReplayOrder.of(history.events))
    try:
        plan = probe_plan(FaultSchedule(), "r", lockstep=lockstep)
    finally:
        lockstep.stop()
    assert plan.after_shutdown == ((("t3", (), 0, 1), fault_entry("f0")),)


def test_a_result_done_as_its_worker_shut_down_never_reaching_the_scheduler_waits_for_its_close():
    """Nightly --seed 3131's `s033`: t6's step-0 result was done on a retirement's victim
    1 ms before the scheduler removed it, and ran again elsewhere; in 1 of 10 replays it
    came 10 ms before, and the scheduler took it. Such a result waits, as one a nanny's
    close cut short, for its worker's stream to close. One the victim's removal lost
    (it had reached the scheduler), and one not run again (moved), wait as before."""
    history = HistoryBuilder("dask-raw", workers=4)
    for task in ("t0", "t2", "t3"):
        history.submit(task)
    # An earlier process at t0's worker's address, removed before: not its removal.
    history.emit("worker-removed", worker=history.workers[0], lost_computed_keys=["step-t0--0-a1"])
    history.wait(0.05)
    runs = {task: history.invoke(task, worker=n) for task, n in (("t0", 0), ("t2", 2), ("t3", 3))}
    for n in (0, 2, 3):
        history.fault(worker=n, kind="retire", fault_id=f"f{n}", noticed=0.1)
    for task in runs:
        history.outcome(runs[task], seconds=0.01)
    history.wait(0.05)
    key = {e["execution"]: e["key"] for e in history.events if e["type"] == "invoke"}
    for n, lost in ((0, []), (2, [key[runs["t2"]]]), (3, [])):
        history.emit("worker-removed", worker=history.workers[n], lost_computed_keys=lost)
    history.execute("t0", worker=1)  # run again: it never reached the scheduler
    history.execute("t2", worker=1)  # run again: lost with its worker
    history.end()
    races = ReplayOrder.of(history.events).death_races
    assert races.closed_short == {("t0", (), 0, 1): "f0"}
    assert races.after_shutdown == {("t2", (), 0, 1): "f2", ("t3", (), 0, 1): "f3"}


def test_a_shutdown_fires_once_the_results_done_on_its_victim_just_before_it_are_done():
    """Nightly --seed 3131's `s039`: t6's step-1 result was done 14 ms before a
    retirement fired on its worker, which found the result there, not its input."""
    history = HistoryBuilder("dask-raw", workers=3)
    history.submit("t0")
    history.outcome(history.invoke("t0", worker=0))
    history.fault(worker=0, kind="retire", fault_id="f0", noticed=0.1)
    history.end()
    lockstep, writer = replaying(history.events, patience=0.3, board=True)
    assert lockstep.board is not None
    threading.Timer(0.1, turns.take_turn, (lockstep.board, [], ("t0", (), 0), 1.0)).start()
    started = time.monotonic()
    lockstep.before_landing("f0")
    assert 0.1 <= time.monotonic() - started < 0.25
    lockstep.stop()
    # One never done here is given up after the patience, said.
    lockstep, writer = replaying(history.events, patience=0.2, board=True)
    lockstep.before_landing("f0")
    [diverged] = [e for e in writer.events if e["type"] == "lockstep-diverged"]
    assert diverged["missing"] == [["done", "t0", [], 0, 1]]
    lockstep.stop()


def two_faults_at_one_hit() -> list[dict]:
    """A made original: f0 (kill) and f1 (freeze) armed at t0's result; the harness
    enacted f0, the client took t0's loss, then the harness enacted f1 at the same hit.
    f2 fired later, at t1's result."""
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3", "t4", "t5"):
        original.submit(task)
    x0 = original.invoke("t0", worker=0)
    hit = {"type": "result-ready", "step": 0, "task": "t0", "task_id": "t0",
           "execution": x0, "point": "result", "fraction": 1.0}
    original.emit("fault", fault_id="f0", kind="sigkill", trigger=hit,
                  worker=original.workers[0], pid=100, fired_at=original.clock,
                  landed_at=original.clock, noticed_at=original.clock + 0.005)
    original.emit("step-error", task_id="t0", index=[], step=0, attempt=1, key="t0",
                  cause="lost-input", error="FutureCancelledError: t0 cancelled")
    original.emit("fault", fault_id="f1", kind="freeze", trigger=hit,
                  worker=original.workers[1], pid=101, fired_at=original.clock,
                  landed_at=original.clock, noticed_at=None, freeze_for=0.1)
    x1 = original.invoke("t1", worker=1)
    original.outcome(x1)
    original.emit("step-completed", task_id="t1", index=[], step=0, attempt=1, key="t1",
                  n_outputs=1)
    original.emit("fault", fault_id="f2", kind="freeze",
                  trigger={**hit, "task": "t1", "task_id": "t1", "execution": x1},
                  worker=original.workers[2], pid=102, fired_at=original.clock,
                  landed_at=original.clock, noticed_at=None, freeze_for=0.1)
    for task in ("t2", "t3", "t4", "t5"):
        finished(original, task)
    original.end()
    return original.events


def test_faults_decided_at_one_hit_share_the_first_ones_turn():
    order = ReplayOrder.of(two_faults_at_one_hit())
    # Six submits before f0; t0's loss came before f1 fired, and is no turn of its hit,
    # but the client wrote it before f1 fired, and waits for f1 after it.
    assert order.hit_turns == {"f0": 6, "f1": 6, "f2": 8}
    assert order.fault_turns == {"f0": 6, "f1": 7, "f2": 8}


def test_the_client_waits_for_each_fault_of_one_hit_at_its_own_turn():
    """Both of the hit's faults are due after the six submits, but the client waits
    there for f0 only: it took t0's loss before f1 fired in the original."""
    lockstep, writer = replaying(two_faults_at_one_hit(), patience=5.0)
    for task in ("t0", "t1", "t2", "t3", "t4"):
        landmark(writer, task)
    assert lockstep.too_early("f1", time.monotonic())
    passed = threading.Event()

    def client() -> None:
        landmark(writer, "t5")
        passed.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert not passed.wait(0.2)
    assert not lockstep.too_early("f1", time.monotonic())  # due with f0
    lockstep.fired("f0")
    assert passed.wait(1)  # not held for f1 (it would be, for its patience: 5 s)
    thread.join(2)
    lockstep.stop()


def test_a_fault_never_noticed_lets_the_results_after_it_go_as_it_fires():
    """A freeze has no notice: its entry sits among the results where it fired, and the
    results after it must not wait for its thaw (1 s). A kill's waits for its notice."""
    lockstep, _ = replaying(two_faults_at_one_hit(), board=True)
    assert lockstep.board is not None
    assert lockstep.order.unnoticed == {"f1", "f2"}
    lockstep.fired("f1")
    lockstep.fired("f0")
    assert turns.wait_done(lockstep.board, fault_entry("f1"), 0.01)
    assert not turns.wait_done(lockstep.board, fault_entry("f0"), 0.01)
    lockstep.settled("f0")
    assert turns.wait_done(lockstep.board, fault_entry("f0"), 0.01)
    lockstep.stop()


def test_a_kill_lands_only_once_the_client_took_the_result_that_beat_it_there():
    lockstep, writer = replaying(results_racing_a_kill(), patience=0.5)
    for task in ("t0", "t1", "t2", "t3"):
        landmark(writer, task)
    landed = threading.Event()
    lander = threading.Thread(target=lambda: (lockstep.before_landing("f0"), landed.set()))
    lander.start()
    started = time.monotonic()
    # The client is not held at f0's turn (after t0) waiting for it to fire: f0 waits
    # for it.
    writer.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="k0")
    assert time.monotonic() - started < 0.3
    assert not landed.wait(0.1)
    writer.emit("step-completed", task_id="t1", index=[], step=0, attempt=1, key="k1")
    assert landed.wait(0.3)
    lander.join(1)
    assert not [e for e in writer.events if e["type"] == "lockstep-diverged"]
    # A fault no result raced lands at once.
    started = time.monotonic()
    lockstep.before_landing("f9")
    assert time.monotonic() - started < 0.05
    lockstep.stop()


def test_the_client_fetches_a_result_that_died_with_its_worker_only_after_the_kill():
    lockstep, writer = replaying(results_racing_a_kill())
    fetched = {task: threading.Event() for task in ("t1", "t2")}

    def client() -> None:
        for task in fetched:
            writer.emit("fetch", task_id=task, index=[], step=0)
            fetched[task].set()

    thread = threading.Thread(target=client)
    thread.start()
    assert fetched["t1"].wait(0.2)  # it reached the client in the original: not held
    assert not fetched["t2"].wait(0.2)  # it died with its worker: held for f0's notice
    noticed = time.time()
    lockstep.settled("f0")
    assert fetched["t2"].wait(1)
    thread.join(1)
    assert writer.events[-1]["task_id"] == "t2" and writer.events[-1]["time"] >= noticed
    lockstep.stop()


def test_a_fetch_on_its_way_as_the_kill_fired_died_with_the_worker():
    """t0's step was done 0.2 s before the kill (no race by the time it was done), but
    the client's fetch of it began before the kill fired and never came back; t1's
    fetch began after the notice, and the replay needs no hold for it; t2's came back."""
    history = HistoryBuilder("dask-raw", workers=2)
    for task in ("t0", "t1", "t2"):
        history.outcome(history.invoke(task, worker=0))
    history.wait(0.2)
    history.emit("fetch", task_id="t2", index=[], step=0)
    history.emit("step-completed", task_id="t2", index=[], step=0, attempt=1, key="k2",
                 n_outputs=1)
    history.emit("fetch", task_id="t0", index=[], step=0)
    history.fault(worker=0, kind="sigkill", noticed=0.02, fault_id="f0")
    history.wait(0.05)
    history.step_error("t0")
    history.emit("fetch", task_id="t1", index=[], step=0)
    history.step_error("t1")
    history.end()
    assert ReplayOrder.of(history.events).death_races.lost == {("t0", (), 0, 1): "f0"}


def test_a_kill_whose_racing_result_never_comes_lands_after_patience_and_says_so():
    lockstep, writer = replaying(results_racing_a_kill(), patience=0.2)
    started = time.monotonic()
    lockstep.before_landing("f0")
    assert 0.2 <= time.monotonic() - started < 0.4
    [diverged] = [e for e in writer.events if e["type"] == "lockstep-diverged"]
    assert diverged["waiting"] == "fault f0 to land"
    assert diverged["missing"] == [["t1", [], 0, 1]]
    lockstep.stop()


SCATTER_CLOSED = ("CommClosedError: in <TCP (closed) ConnectionPool.scatter "
                  "local=tcp://127.0.0.1:1 remote=tcp://127.0.0.1:2>: Stream is closed")


def a_scatter_meets_a_kill(*, noticed_after: float = 0.1, died_after: float = 0.0,
                           fired_after: float = 0.0,
                           error: str | None = SCATTER_CLOSED) -> list[dict]:
    """t0's worker is killed as t0 starts (fired `fired_after` later, dead `died_after`
    later); the client takes t1's result and scatters its next input (0.03 s after t0
    started), which goes to t0's worker (the first in the rotation) before the scheduler
    noticed the kill (`noticed_after` t0's start), and the loop ends."""
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2"):
        original.submit(task)
    x1 = [original.invoke(task, worker=n) for n, task in enumerate(("t0", "t1", "t2"))][1]
    original.emit("fault", fault_id="f0", kind="sigkill",
                  trigger={"type": "at-step", "step": 0, "task": "t0", "task_id": "t0"},
                  worker=original.workers[0], pid=100, fired_at=original.clock + fired_after,
                  landed_at=original.clock + died_after,
                  noticed_at=original.clock + noticed_after)
    original.outcome(x1, seconds=0.001)
    original.emit("step-completed", task_id="t1", index=[], step=0, attempt=1, key="k1",
                  n_outputs=1)
    original.emit("scatter", task_id="t1", index=[0], step=1)
    original.end("crashed" if error else "completed", error=error)
    return original.events


def test_the_kill_the_clients_scatter_met_is_the_one_fired_before_it_and_noticed_after():
    # Its victim had died (landed) before the scatter: stopped as soon as it fires.
    assert ReplayOrder.of(a_scatter_meets_a_kill()).met_in_scatter == {
        "f0": Meeting(nth=1, fired_before=True, died_before=True)}
    # Noticed before the scatter: the scheduler no longer offered that worker.
    assert ReplayOrder.of(a_scatter_meets_a_kill(noticed_after=0.001)).met_in_scatter == {}
    # The scatter went through: nothing to meet.
    assert ReplayOrder.of(a_scatter_meets_a_kill(error=None)).met_in_scatter == {}
    # A segfault, say, that landed after the scatter: its victim lives on until then.
    assert ReplayOrder.of(a_scatter_meets_a_kill(died_after=0.05)).met_in_scatter == {
        "f0": Meeting(nth=1, fired_before=True, died_before=False)}
    # Fired as the scatter was on its way (after its event), and met by it all the same.
    assert ReplayOrder.of(a_scatter_meets_a_kill(fired_after=0.035, died_after=0.036)
                          ).met_in_scatter == {"f0": Meeting(1, False, False)}


def test_a_kill_that_fired_as_its_scatter_went_lands_at_once_after_it():
    race = ScatterRace("f0", Meeting(nth=2, fired_before=False, died_before=False), 5.0)
    race.history = HistoryWriter()
    race.client_at(1)
    race.client_at(2)  # not held: the kill fired after the scatter in the original
    race.arm()
    started = time.monotonic()
    assert race.wait_for_client() is True and time.monotonic() - started < 0.1
    [held] = race.history.events
    assert held["how"] == "killed as it fired, the scatter under way"


def test_a_client_at_the_scatter_waits_for_a_kill_that_fired_before_it_in_the_original():
    race = ScatterRace("f0", Meeting(nth=1, fired_before=True, died_before=False), 5.0)
    scattered = threading.Event()

    def client() -> None:
        race.client_at(1)
        scattered.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert not scattered.wait(0.2)  # the kill has not fired yet
    race.arm()
    assert race.wait_for_client() is False  # the client is at its scatter, held
    assert not scattered.wait(0.2)  # until the victim is stopped
    race.release()
    assert scattered.wait(2)
    thread.join(2)


@pytest.mark.parametrize("died_after", [0.0, 0.05], ids=["died-at-once", "died-late"])
def test_a_replay_holds_a_kill_until_its_client_scatters_and_meets_it_again(harness,
                                                                             died_after):
    """The original's naive loop met the dying worker in a scatter and ended. A free run
    of its schedule need not: the scheduler notices the kill (as t0 starts) well before
    the loop scatters (after t1's 50 ms step), unless the host is slow (tried up to three
    times). The replay stops the victim (as the fault fires if it had died at once, else
    as the client comes to the scatter), kills it once the scatter is on its way, and
    the loop ends the same way, every time."""
    schedule = FaultSchedule((Fault("sigkill", AtStep(step=0, task="t0")),), seed=0)
    two_steps = Workload(n_tasks=3, n_steps=2, payload_bytes=1_000, step_seconds=0.05, seed=5)
    free = (run_schedule(schedule, "dask-raw", {}, two_steps, harness, timeout=60).error
            for _ in range(3))
    assert any(error is None for error in free), "no free run of the schedule ended cleanly"
    for _ in range(2):
        record = run_schedule(schedule, "dask-raw", {}, two_steps, harness, timeout=60,
                              replay_of=a_scatter_meets_a_kill(died_after=died_after))
        assert record.error is not None and record.error.startswith("CommClosedError"), (
            record.status, record.error, record.events("lockstep-diverged"))
        [fault] = record.events("fault")
        assert fault["mechanism"] == "local" and fault["noticed_at"] is not None, fault
        [scatter] = record.events("scatter")
        assert fault["fired_at"] > scatter["time"], (fault, scatter)
        [held] = record.events("kill-held")
        assert held["fault_id"] == "f0" and held["how"] == (
            "stopped as it fired" if died_after == 0.0 else
            "stopped as the client came to its scatter")
        if died_after == 0.0:  # stopped as t0 started, t0 never finished
            [t0] = [e["execution"] for e in record.events("invoke") if e["task_id"] == "t0"]
            assert t0 not in {e["execution"] for e in record.events("ok")}


def a_scatter_beats_a_kill(*, fired_after: float = 0.003, met: bool = False) -> list[dict]:
    """t0 starts; the client takes t1's result and scatters its next input; t0's worker
    is killed `fired_after` later; the scatter goes through (unless `met`: the loop ends
    with CommClosedError) and the client submits t1's step 1 after the kill fired."""
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2"):
        original.submit(task)
    x1 = [original.invoke(task, worker=n) for n, task in enumerate(("t0", "t1", "t2"))][1]
    original.outcome(x1, seconds=0.001)
    original.emit("step-completed", task_id="t1", index=[], step=0, attempt=1, key="k1",
                  n_outputs=1)
    made = original.clock
    original.emit("scatter", task_id="t1", index=[0], step=1)
    original.emit("fault", fault_id="f0", kind="sigkill",
                  trigger={"type": "at-step", "step": 0, "task": "t0", "task_id": "t0"},
                  worker=original.workers[0], pid=100, fired_at=made + fired_after,
                  landed_at=made + fired_after + 0.003, noticed_at=made + 0.05)
    if met:
        original.end("crashed", error=SCATTER_CLOSED)
    else:
        original.clock = max(original.clock, made + fired_after + 0.01)  # after it fired
        original.submit("t1", (0,), step=1)
        original.end()
    return original.events


def test_a_kill_that_a_scatter_beat_is_read_with_the_submit_after_it():
    assert ReplayOrder.of(a_scatter_beats_a_kill()).scatters_beaten == {
        "f0": (("t1", (0,), 1), 1)}
    # Fired long after the scatter was made: no race.
    assert ReplayOrder.of(a_scatter_beats_a_kill(fired_after=0.08)).scatters_beaten == {}
    # The scatter met the kill and ended the loop: the other rule holds it.
    assert ReplayOrder.of(a_scatter_beats_a_kill(met=True)).scatters_beaten == {}


def test_a_replay_lands_a_kill_only_after_the_scatter_that_beat_it_went_through(harness):
    """The original's client scattered t1's next input to t0's worker 3 ms before that
    worker's SIGKILL, and the scatter went through; left to the race, the replay's kill
    can meet the scatter and end the loop. It lands only once the client has submitted
    t1's step 1, twice running."""
    schedule = FaultSchedule((Fault("sigkill", AtStep(step=0, task="t0")),), seed=0)
    two_steps = Workload(n_tasks=3, n_steps=2, payload_bytes=1_000, step_seconds=0.05, seed=5)
    for _ in range(2):
        record = run_schedule(schedule, "dask-raw", {}, two_steps, harness, timeout=60,
                              replay_of=a_scatter_beats_a_kill())
        assert not (record.error or "").startswith("CommClosedError"), record.error
        [fault] = record.events("fault")
        [submit] = [e for e in record.events("submit") if e["task_id"] == "t1"
                    and e["step"] == 1]
        assert fault["fired_at"] > submit["time"], (fault, submit)


WAVES = Workload(n_tasks=6, n_steps=1, payload_bytes=1_000, step_seconds=0.05, seed=5)


def finished(original: HistoryBuilder, task: str) -> None:
    """In a made original: `task`'s one step ran on its input's worker and was taken."""
    original.outcome(original.invoke(task, worker=int(task[1]) % 3))
    original.emit("step-completed", task_id=task, index=[], step=0, attempt=1, key=task,
                  n_outputs=1)


def test_a_lockstep_replay_finishes_its_steps_in_the_originals_order(harness):
    """A made original in which each wave of steps finished in reverse (t2 before t1
    before t0, ...): a free run finishes them about in task order, a replay keeps to the
    original's, twice running (results a millisecond apart must not overtake each other
    on their way to the client)."""
    wanted = ["t2", "t1", "t0", "t5", "t4", "t3"]
    original = HistoryBuilder("dask-raw", workers=3)
    for task in wanted:
        finished(original, task)
    original.end()
    for _ in range(2):
        record = run_schedule(FaultSchedule((), seed=0), "dask-raw", {}, WAVES, harness,
                              timeout=60, replay_of=original.events)
        taken = [e["task_id"] for e in record.events("step-completed")]
        assert taken == wanted, taken
        assert not record.events("lockstep-diverged")
        assert record.history[0]["lockstep"] is True


def test_a_lockstep_replay_fires_a_fault_only_once_the_client_is_where_it_was(harness):
    """A made original whose fault, triggered by t0's first result, fired only after the
    client had taken t4's (the second wave), and whose t5 finished after the scheduler
    noticed the fault: a free run fires the fault at once and finishes t5 whenever, a
    replay holds the fault (and t0's worker with it) until the client got there, and t5
    until the notice."""
    schedule = FaultSchedule((Fault("sigkill", ResultReady(step=0, task="t0")),), seed=0)
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3", "t4", "t5"):
        original.submit(task)
    for task in ("t1", "t2", "t4"):
        finished(original, task)
    original.emit("fault", fault_id="f0", kind="sigkill",
                  trigger={"type": "result-ready", "step": 0, "task": "t0", "task_id": "t0"},
                  worker=original.workers[0], pid=100, fired_at=original.clock,
                  landed_at=original.clock, noticed_at=original.clock + 0.005)
    finished(original, "t5")
    original.end()
    record = run_schedule(schedule, "dask-raw", {}, WAVES, harness, timeout=60,
                          replay_of=original.events)
    fault = record.events("fault")[0]
    taken = {e["task_id"]: e["time"] for e in record.events("step-completed")}
    assert {"t4", "t5"} <= set(taken), taken
    assert fault["fired_at"] > taken["t4"], (fault, taken)
    assert taken["t5"] > fault["noticed_at"], (fault, taken)
    assert not record.events("lockstep-diverged")


def test_a_lockstep_replay_hits_the_worker_its_original_hit_at_random(harness):
    """A random role draws from the live workers, and a worker its nanny restarts
    rejoins a few ms before a trigger in one run and after it in another: a made
    original hit a worker other than the one the draw gives on this fleet, and its
    replay must hit that one too."""
    role = RandomWorker(salt=5)
    schedule = FaultSchedule((Fault("sigkill", ResultReady(step=0, task="t0"), role),), seed=0)
    live = sorted(harness.settle().workers)  # the fleet the run starts with
    drawn = random.Random(f"0:f0:{role.salt}").choice(live)  # victims.choose_victim's draw
    hit = next(address for address in live if address != drawn)
    original = HistoryBuilder("dask-raw", workers=3)  # other addresses, in the same order
    for task in ("t0", "t1", "t2", "t3", "t4", "t5"):
        original.submit(task)
    finished(original, "t0")
    original.emit("fault", fault_id="f0", kind="sigkill",
                  trigger={"type": "result-ready", "step": 0, "task": "t0", "task_id": "t0"},
                  worker=original.workers[live.index(hit)], pid=100, fired_at=original.clock,
                  landed_at=original.clock,
                  noticed_at=original.clock + 0.005)
    for task in ("t1", "t2", "t3", "t4", "t5"):
        finished(original, task)
    original.end()

    record = run_schedule(schedule, "dask-raw", {}, WAVES, harness, timeout=60,
                          replay_of=original.events)
    assert [e["worker"] for e in record.events("fault")] == [hit]
    free = run_schedule(schedule, "dask-raw", {}, WAVES, harness, timeout=60)
    assert [e["worker"] for e in free.events("fault")] == [drawn]


def test_a_lockstep_replay_leaves_a_fault_its_original_never_fired_unfired(harness):
    """A made original whose fault, on t0's result, was skipped (its point was never
    reached there: a naive loop the original's race had ended, say): a free run fires
    it, a replay skips it as the original did, and every task is delivered."""
    schedule = FaultSchedule((Fault("sigkill", ResultReady(step=0, task="t0")),), seed=0)
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3", "t4", "t5"):
        original.submit(task)
        finished(original, task)
    original.emit("fault-skipped", fault_id="f0", kind="sigkill",
                  trigger={"type": "result-ready", "step": 0, "task": "t0"},
                  target={"role": "random"}, cause="not-reached",
                  reason="its trigger point was never reached in this run")
    original.end()
    free = run_schedule(schedule, "dask-raw", {}, WAVES, harness, timeout=60)
    assert [e["fault_id"] for e in free.events("fault")] == ["f0"]
    record = run_schedule(schedule, "dask-raw", {}, WAVES, harness, timeout=60,
                          replay_of=original.events)
    assert not record.events("fault")
    [skipped] = record.events("fault-skipped")
    assert (skipped["fault_id"], skipped["cause"]) == ("f0", "not-reached"), skipped
    assert "its original never fired it" in skipped["reason"]
    assert len(record.events("deliver")) == 6


def t0_done_just_before_its_worker_dies(kind: str, *, taken: bool) -> list[dict]:
    """A made original: t0's worker, killed (`kind`) as t3 starts there, a few ms after
    t0 was done, and the client took t0's result after the kill fired (`taken`), or
    never did."""
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3", "t4", "t5"):
        original.submit(task)
    for task in ("t1", "t2"):
        finished(original, task)
    original.outcome(original.invoke("t0", worker=0), seconds=0.05)
    original.invoke("t3", worker=0)
    dies = 0.001 if kind == "sigkill" else 0.17  # a segfault is asked of the worker
    original.emit("fault", fault_id="f0", kind=kind,
                  trigger={"type": "at-step", "step": 0, "task": "t3", "task_id": "t3"},
                  worker=original.workers[0], pid=100, fired_at=original.clock - 0.005,
                  landed_at=original.clock - 0.005 + dies, noticed_at=original.clock + dies)
    if taken:
        original.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="t0",
                      n_outputs=1)
    for task in ("t4", "t5"):
        finished(original, task)
    original.end()
    return original.events


@pytest.mark.parametrize(("kind", "taken"), [("sigkill", True), ("segfault", False)],
                         ids=["taken", "lost"])
def test_a_result_racing_its_workers_death_goes_the_way_it_went_in_the_original(
        harness, kind, taken):
    """t0's worker is killed as t3 starts there, a few ms after t0's result was done.
    A free run's client loses that race to a SIGKILL (3 ms) and wins it against a
    segfault (seen dead 0.1 to 0.8 s later). A replay keeps to its original, every time,
    either way round: the kill lands only once the client took t0, or the client
    fetches t0 only after the kill was noticed."""
    schedule = FaultSchedule((Fault(kind, AtStep(step=0, task="t3")),), seed=0)
    original = t0_done_just_before_its_worker_dies(kind, taken=taken)
    for _ in range(2):
        record = run_schedule(schedule, "dask-raw", {}, WAVES, harness, timeout=60,
                              replay_of=original)
        [fault] = record.events("fault")
        took = {e["task_id"]: e["time"] for e in record.events("step-completed")}
        assert ("t0" in took) is taken, (took, record.events("lockstep-diverged"))
        if taken:
            assert fault["fired_at"] > took["t0"], (fault, took)
        else:
            [fetch] = [e for e in record.events("fetch") if e["task_id"] == "t0"]
            assert fetch["time"] >= fault["noticed_at"], (fetch, fault)


def test_a_step_its_originals_kill_cut_short_is_still_running_when_the_kill_lands(harness):
    """A made original whose kill (by the clock, at 0.3 s) hit t4's worker while t4 ran,
    and t4's input died with it. Here every step is done by 0.15 s: a replay whose t4 got
    to its result point first must wait there for the kill, and die with its worker or
    finish only after the kill, not deliver what its original lost."""
    role = RandomWorker(salt=1)
    schedule = FaultSchedule((Fault("sigkill", AtTime(0.3), role),), seed=0)
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3", "t4", "t5"):
        original.submit(task)
    for task in ("t0", "t1", "t2"):
        finished(original, task)
    cut = original.invoke("t4", worker=1)
    for task in ("t3", "t5"):
        finished(original, task)
    original.emit("fault", fault_id="f0", kind="sigkill",
                  trigger={"type": "at-time", "seconds": 0.3}, worker=original.workers[1],
                  pid=101, fired_at=original.clock, landed_at=original.clock,
                  noticed_at=original.clock + 0.005)
    original.emit("step-error", task_id="t4", index=[], step=0, attempt=1, key="t4",
                  cause="lost-input", error="FutureCancelledError: t4 cancelled")
    original.end()
    assert ReplayOrder.of(original.events).death_races.cut_short == {("t4", (), 0, 1): "f0"}
    assert cut not in {e.get("execution") for e in original.events if e["type"] == "ok"}

    record = run_schedule(schedule, "dask-raw", {}, WAVES, harness, timeout=60,
                          replay_of=original.events)
    faults = record.events("fault")
    assert faults, "the run ended before its kill: nothing held t4 for it"
    [fault] = faults
    t4 = {e["execution"] for e in record.events("invoke") if e["task_id"] == "t4"}
    done = [e["time"] for e in record.events("ok") if e["execution"] in t4]
    assert all(at > fault["fired_at"] for at in done), (done, fault)


def test_a_replay_fires_faults_armed_at_one_point_when_the_first_is_due(harness):
    """Two faults at t0's result, enacted one after the other there in the original,
    with t0's loss in between: the second must not hold the first (and the client
    waiting for it) for the replay's patience."""
    schedule = FaultSchedule((Fault("sigkill", ResultReady(step=0, task="t0")),
                              Fault("freeze", ResultReady(step=0, task="t0"), RandomWorker(3),
                                    freeze_for=0.1),
                              Fault("freeze", ResultReady(step=0, task="t1"), RandomWorker(4),
                                    freeze_for=0.1)), seed=0)
    record = run_schedule(schedule, "dask-raw", {}, WAVES, harness, timeout=60,
                          replay_of=two_faults_at_one_hit())
    fired = {e["fault_id"]: e["fired_at"] for e in record.events("fault")}
    assert set(fired) == {"f0", "f1", "f2"}, record.events("fault-skipped")
    held = [e for e in record.events("lockstep-diverged") if "f0" in e["waiting"]
            or "f1" in e["waiting"]]
    assert not held, held
    assert fired["f1"] - fired["f0"] < DEFAULT_PATIENCE / 2, fired
