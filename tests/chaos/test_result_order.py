"""Where a lockstep replay's client steps fall among its results
(chaos.harness.result_order): read from made originals, kept on a real board, and
kept in a replay on the shared harness cluster."""

from __future__ import annotations

import threading
import time

from chaos import AtStep, Fault, FaultSchedule
from chaos.harness import run_schedule
from chaos.harness.arming import probe_plan
from chaos.harness.lockstep import Lockstep
from chaos.harness.replay_order import ReplayOrder
from chaos.probes import turns
from chaos.probes.turns import take_turn
from chaos.workload import Workload
from tests.chaos.test_lockstep import replaying
from tests.checker.histories import HistoryBuilder

TWO_STEPS = Workload(n_tasks=3, n_steps=2, payload_bytes=1_000, step_seconds=0.05, seed=5)
T0, T1, T2 = ((task, (), 0, 1) for task in ("t0", "t1", "t2"))
FREEZE_T2 = FaultSchedule((Fault("freeze", AtStep(step=0, task="t2", fraction=0.5),
                                 freeze_for=0.1),), seed=0)


def t2_done_as_t0s_next_input_is_scattered() -> list[dict]:
    """A made original: three steps start at once, and t2's worker is frozen for 0.1 s
    halfway through it. t0's and t1's results are done; the client takes t0's and
    scatters its next input, t2's is done, and only then the client submits t0's next
    step (so the scheduler had t2's worker free first). Then it takes t1 and t2, and
    every next step runs and is taken."""
    original = HistoryBuilder("dask-raw", workers=3)
    tasks = ("t0", "t1", "t2")
    for task in tasks:
        original.submit(task)
    runs = [original.invoke(task, worker=n) for n, task in enumerate(tasks)]
    original.emit("fault", fault_id="f0", kind="freeze",
                  trigger={"type": "at-step", "step": 0, "task": "t2", "task_id": "t2",
                           "fraction": 0.5, "point": "progress", "execution": runs[2]},
                  worker=original.workers[2], pid=102, fired_at=original.clock,
                  landed_at=original.clock, noticed_at=None, freeze_for=0.1)
    original.outcome(runs[0])
    original.outcome(runs[1], seconds=0.001)
    original.wait(0.05)  # the client took t0 late
    original.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="a0",
                  n_outputs=1)
    scattered = original.clock
    original.emit("scatter", task_id="t0", index=[0], step=1)
    original.clock = scattered + 0.003  # a quick scatter, t2 done as it went
    original.emit("ok", execution=runs[2], n_outputs=1, duration=0.15, cpu=0.05)
    original.clock = scattered + 0.005
    original.submit("t0", (0,), 1)
    for task in tasks[1:]:
        original.emit("step-completed", task_id=task, index=[], step=0, attempt=1,
                      key=f"a{task}", n_outputs=1)
        original.emit("scatter", task_id=task, index=[0], step=1)
        original.submit(task, (0,), 1)
    for n, task in enumerate(tasks):
        original.outcome(original.invoke(task, (0,), 1, worker=n))
        original.emit("step-completed", task_id=task, index=[0], step=1, attempt=1,
                      key=f"b{task}", n_outputs=1)
        original.deliver(task, (0, 0))
    original.end()
    return original.events


def test_a_scatter_waits_for_the_results_done_before_the_submit_after_it():
    order = ReplayOrder.of(t2_done_as_t0s_next_input_is_scattered())
    assert order.scatter_waits[(("t0", (0,), 1), 1)] == T2
    assert order.scatter_waits[(("t2", (0,), 1), 1)] == T2
    # t1 and t2 were done before the client took the result before them.
    assert {T1, T2} <= set(order.close_behind)
    assert ("t1", (0,), 1, 1) not in order.close_behind  # done after t0's next was taken
    # The client took the ones before them: they wait until the scheduler holds those.
    assert {T1, T2} <= set(order.behind_taken) <= set(order.close_behind)
    lockstep = Lockstep(order)
    try:
        plan = probe_plan(FaultSchedule(), "r", lockstep=lockstep)
    finally:
        lockstep.stop()
    assert plan.behind_taken == order.behind_taken


def a_scatter_and_its_submit(*, submit_after: float, kill_during: bool = False
                             ) -> list[dict]:
    """A made original: t0 is taken and its next input scattered; t1 is done 3 ms
    later, and the client submits t0's next step `submit_after` s after the scatter
    (with a kill fired in between, if `kill_during`)."""
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1"):
        original.submit(task)
    runs = [original.invoke(task, worker=n) for n, task in enumerate(("t0", "t1"))]
    original.outcome(runs[0])
    original.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="a0",
                  n_outputs=1)
    scattered = original.clock
    original.emit("scatter", task_id="t0", index=[0], step=1)
    original.clock = scattered + 0.002
    if kill_during:
        original.emit("fault", fault_id="f0", kind="sigkill", trigger={"type": "at-time"},
                      worker=original.workers[2], pid=102, fired_at=original.clock,
                      landed_at=original.clock, noticed_at=original.clock + 0.005)
    original.clock = scattered + 0.003
    original.emit("ok", execution=runs[1], n_outputs=1, duration=0.05, cpu=0.05)
    original.clock = scattered + submit_after
    original.submit("t0", (0,), 1)
    original.end()
    return original.events


def test_a_scatter_a_dying_worker_held_up_waits_for_no_result():
    """A scatter may take 100 ms and more, held up by a dying worker: the results done
    meanwhile raced nothing, and waiting for them moved the scatter past the kill
    (nightly --seed 777's `s018`: t7's input no longer went to the dying worker)."""
    quick = ReplayOrder.of(a_scatter_and_its_submit(submit_after=0.005))
    assert quick.scatter_waits == {(("t0", (0,), 1), 1): T1}
    slow = ReplayOrder.of(a_scatter_and_its_submit(submit_after=0.1))
    assert slow.scatter_waits == {}
    killed = ReplayOrder.of(a_scatter_and_its_submit(submit_after=0.005, kill_during=True))
    assert killed.scatter_waits == {}


def test_a_result_after_one_the_client_never_took_is_close_behind_it():
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1"):
        original.submit(task)
    original.outcome(original.invoke("t0", worker=0))  # died with its worker: never taken
    original.outcome(original.invoke("t1", worker=1))
    original.emit("step-completed", task_id="t1", index=[], step=0, attempt=1, key="a1",
                  n_outputs=1)
    original.end()
    order = ReplayOrder.of(original.events)
    assert order.close_behind == (T1,)
    assert order.behind_taken == ()  # the scheduler may never have held t0


def t2_done_first_lost_with_its_worker(*, kill_after_the_take: bool = True) -> list[dict]:
    """A made original (nightly --seed 4242's `s031`): t2 is done 1 ms before t1, on
    another worker; the client takes t1, not t2, and a kill then takes t2's worker."""
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t1", "t2"):
        original.submit(task)
    t2, t1 = original.invoke("t2", worker=2), original.invoke("t1", worker=1)
    original.outcome(t2)
    original.outcome(t1, seconds=0.001)
    if not kill_after_the_take:
        original.fault(worker=2, fault_id="f0")
    original.emit("step-completed", task_id="t1", index=[], step=0, attempt=1, key="a1",
                  n_outputs=1)
    if kill_after_the_take:
        original.fault(worker=2, fault_id="f0")
    original.end()
    return original.events


def test_a_result_lost_with_its_worker_waits_for_the_one_the_client_took_before_the_kill():
    order = ReplayOrder.of(t2_done_first_lost_with_its_worker())
    assert order.results.index(T1) < order.results.index(T2)
    assert T2 not in order.close_behind  # it waits for the client to take t1


def test_a_result_lost_with_its_worker_keeps_its_place_before_a_result_taken_after_the_kill():
    order = ReplayOrder.of(t2_done_first_lost_with_its_worker(kill_after_the_take=False))
    assert order.results.index(T2) < order.results.index(T1)
    assert T1 in order.close_behind


def test_a_scatter_the_loop_ended_on_waits_for_nothing():
    original = HistoryBuilder("dask-raw", workers=3)
    original.submit("t0")
    original.outcome(original.invoke("t0"))
    original.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="a0",
                  n_outputs=1)
    original.emit("scatter", task_id="t0", index=[0], step=1)
    original.end("crashed", error="CommClosedError: in scatter")
    assert ReplayOrder.of(original.events).scatter_waits == {}


def test_the_clients_scatter_waits_until_that_result_is_done_on_the_board():
    lockstep, writer = replaying(t2_done_as_t0s_next_input_is_scattered(), board=True)
    assert lockstep.board is not None
    for entry in (T0, T1):
        turns.mark_done(lockstep.board, entry)
    scattered = threading.Event()

    def client() -> None:
        writer.emit("scatter", task_id="t0", index=[0], step=1)
        scattered.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert not scattered.wait(0.2)  # t2 is not done yet
    done = time.time()
    turns.mark_done(lockstep.board, T2)
    assert scattered.wait(1)
    thread.join(1)
    [event] = writer.events
    assert event["time"] >= done + turns.IN_FLIGHT  # t2's result on its way first
    assert not [e for e in writer.events if e["type"] == "lockstep-diverged"]
    lockstep.stop()


def test_a_result_that_never_comes_holds_the_scatter_for_patience_and_says_so():
    lockstep, writer = replaying(t2_done_as_t0s_next_input_is_scattered(), board=True,
                                 patience=0.2)
    started = time.monotonic()
    writer.emit("scatter", task_id="t0", index=[0], step=1)
    assert 0.2 <= time.monotonic() - started < 0.5
    [diverged] = [e for e in writer.events if e["type"] == "lockstep-diverged"]
    assert diverged["missing"] == [["t2", [], 0, 1]]
    lockstep.stop()


def test_a_result_close_behind_the_one_before_does_not_wait_for_the_client(
        tmp_path, monkeypatch):
    monkeypatch.setattr(turns, "ARRIVAL_WAIT", 2.0)
    board, order = str(tmp_path), (T0, T1)
    take_turn(board, order, T0[:3], patience=5.0)
    started = time.monotonic()
    take_turn(board, order, T1[:3], patience=5.0, close_behind=(T1,))
    assert time.monotonic() - started < 1.0  # not the client's 2 s
    gap = turns._done_at(tmp_path, T1) - turns._done_at(tmp_path, T0)
    assert gap >= turns.IN_FLIGHT, gap  # but never overtaking it on its way


def test_a_replay_submits_a_step_after_the_result_its_original_had_done_first(harness):
    """A free run's client scatters and submits t0's next step as soon as it took t0,
    while t2's worker is frozen; the replay's client waits for t2, as its original did."""
    original = t2_done_as_t0s_next_input_is_scattered()
    for _ in range(2):
        record = run_schedule(FREEZE_T2, "dask-raw", {}, TWO_STEPS, harness, timeout=60,
                              replay_of=original)
        t2 = {e["execution"] for e in record.events("invoke")
              if (e["task_id"], e["step"]) == ("t2", 0)}
        [t2_done] = [e["time"] for e in record.events("ok") if e["execution"] in t2]
        [submit] = [e["time"] for e in record.events("submit")
                    if (e["task_id"], e["step"]) == ("t0", 1)]
        assert t2_done < submit, (t2_done, submit, record.events("lockstep-diverged"))
