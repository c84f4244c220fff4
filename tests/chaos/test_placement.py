"""Where the client's scatters went (chaos.harness.placement): what a replay reads from its
original, and, on the shared harness cluster, that it puts each input where its
original's went."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from distributed.core import Status

from chaos import FaultSchedule
from chaos.harness import run_schedule
from chaos.harness.lockstep import Lockstep
from chaos.harness.placement import scatters_placed
from chaos.harness.replay_order import ReplayOrder, first_workers
from chaos.harness.targets import base
from chaos.harness.targets.base import TargetConfig, TargetRun
from chaos.history import HistoryWriter
from chaos.workload import Workload
from tests.checker.histories import HistoryBuilder

TWO_STEPS = Workload(n_tasks=4, n_steps=2, payload_bytes=1_000, step_seconds=0.02, seed=3)


def scattered(history: HistoryBuilder, task: str, worker: int) -> None:
    """The client scattered `task`'s step-1 input, and the scheduler put it on `worker`."""
    key = f"SyntheticPose-{task}"
    history.emit("scatter", task_id=task, index=[0], step=1, key=key)
    history.emit("scatter-placed", keys=[key], workers=[history.workers[worker]])


def inputs_on_a_victim() -> list[dict]:
    """t0's and t1's inputs go to worker 1, t2's to worker 0; worker 1 is closed and
    noticed gone; then t3's input goes to a worker at its address (a refill)."""
    history = HistoryBuilder("dask-raw", workers=3)
    scattered(history, "t0", 1)
    scattered(history, "t1", 1)
    scattered(history, "t2", 0)
    history.fault(worker=1, kind="nanny-close", noticed=0.02, fault_id="f0")
    history.wait(0.05)
    scattered(history, "t3", 1)
    history.emit("scatter-placed", keys=["SyntheticPose-not-the-clients"],
                 workers=[history.workers[2]])
    history.end()
    return history.events


def test_where_each_input_went_is_read_by_its_key_and_kept_by_the_workers_place():
    original = inputs_on_a_victim()
    order = ReplayOrder.of(original)
    assert [(p, first_workers(original).index(w)) for p, w, _ in scatters_placed(original)] == [
        ((("t0", (0,), 1), 1), 1), ((("t1", (0,), 1), 1), 1), ((("t2", (0,), 1), 1), 0),
        ((("t3", (0,), 1), 1), 1)]
    assert order.placements == {(("t0", (0,), 1), 1): 1, (("t1", (0,), 1), 1): 1,
                                (("t2", (0,), 1), 1): 0, (("t3", (0,), 1), 1): 1}
    # Only what it held before it was noticed gone: t3's went to its successor.
    assert order.placed_on_victims == {"f0": ((("t0", (0,), 1), 1), (("t1", (0,), 1), 1))}


def test_a_replay_puts_each_input_on_the_worker_in_its_originals_place():
    lockstep = Lockstep(ReplayOrder.of(inputs_on_a_victim()), shared_board=False)
    writer = HistoryWriter()
    writer.emit("run-start", workers=[{"address": a, "pid": 1}
                                      for a in ("tcp://h:3", "tcp://h:1", "tcp://h:2")])
    lockstep.start(writer)
    writer.emit("scatter", task_id="t1", index=[0], step=1, key="k")
    assert lockstep.where(("t1", (0,), 1)) == "tcp://h:2"  # place 1 by address
    writer.emit("scatter", task_id="t1", index=[0], step=1, key="k2")
    assert lockstep.where(("t1", (0,), 1)) is None  # the original scattered it once
    lockstep.stop()


def test_a_kill_lands_only_once_the_inputs_its_original_put_on_the_victim_are_there():
    lockstep = Lockstep(ReplayOrder.of(inputs_on_a_victim()), patience=1.0,
                        shared_board=False)
    lockstep.start(HistoryWriter())
    landed = threading.Event()
    lander = threading.Thread(target=lambda: (lockstep.before_landing("f0"), landed.set()))
    lander.start()
    lockstep.placed(("t0", (0,), 1))
    lockstep.placed(("t2", (0,), 1))
    assert not landed.wait(0.2)  # t1's input is not there yet
    lockstep.placed(("t1", (0,), 1))
    assert landed.wait(0.3)
    lander.join(1)
    lockstep.stop()


def test_a_lockstep_replay_scatters_each_input_where_its_original_did(harness):
    """An original (run here, with no fault) whose every step-1 input went to its third
    worker: the round robin spreads them over all three, the replay puts each on the
    third worker, and says so in its own `scatter-placed` events.

    That original is itself recorded: a replay of a fault-free run whose `scatter-placed`
    events were rewritten to the third worker. The rewritten history alone is not one a
    run could write: its steps ran where the round robin's inputs were, and a replay that
    puts them elsewhere waits, at each result, for steps its worker ran next there and
    never gets here (`queued_behind`; 18 of 40 such replays diverged)."""
    free = run_schedule(FaultSchedule((), seed=0), "dask-raw", {}, TWO_STEPS, harness,
                        timeout=60)
    assert len({w for _, w, _ in scatters_placed(free.history)}) > 1  # the round robin
    first = first_workers(free.history)
    rewritten = [dict(e, workers=[first[2]] * len(e["workers"]))
                 if e["type"] == "scatter-placed" else e for e in free.history]
    original = run_schedule(FaultSchedule((), seed=0), "dask-raw", {}, TWO_STEPS, harness,
                            timeout=60, replay_of=rewritten).history
    third = first_workers(original)[2]
    assert {worker for _, worker, _ in scatters_placed(original)} == {third}
    started = time.monotonic()
    replay = run_schedule(FaultSchedule((), seed=0), "dask-raw", {}, TWO_STEPS, harness,
                          timeout=60, replay_of=original)
    here = first_workers(replay.history)
    placed = scatters_placed(replay.history)
    assert len(placed) == TWO_STEPS.n_tasks, replay.history
    assert {worker for _, worker, _ in placed} == {here[2]}
    assert not replay.events("lockstep-diverged")
    assert time.monotonic() - started < 30


class SendsTo:
    """A replay whose original scattered every input to `worker`."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.placed_steps: list[tuple] = []

    def where(self, step: tuple) -> str | None:
        return self.worker

    def placed(self, step: tuple) -> None:
        self.placed_steps.append(step)

    def priority(self, step: tuple) -> int:
        return 0


def set_status(status: str, dask_worker=None) -> None:
    dask_worker.status = Status[status]


def seen_leaving(harness, worker: str) -> None:
    """Until the scheduler has the worker's new status (it comes on the worker's stream).
    A worker marked as leaving, not paused: its memory monitor unpauses it at once."""
    deadline = time.monotonic() + 5
    while harness.client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.workers[worker].status.name
    ) != "closing_gracefully":
        assert time.monotonic() < deadline, "the scheduler never saw the worker leaving"
        time.sleep(0.01)


@pytest.mark.parametrize("gone", [True, False], ids=["no-such-worker", "leaving-worker"])
def test_a_scatter_to_a_worker_not_running_here_goes_anywhere_and_says_so(harness, tmp_path,
                                                                          gone):
    """The worker the original's went to is not here, or not running (a replay that left
    its original): the scatter goes where Dask puts it, after at most half a second."""
    worker = "tcp://127.0.0.1:9" if gone else sorted(harness.live_workers())[0]
    hooks = SendsTo(worker)
    history = HistoryWriter()
    run = TargetRun(harness.client, TWO_STEPS, [], TargetConfig(), history, tmp_path,
                    lockstep=hooks)
    if not gone:
        harness.client.run(set_status, "closing_gracefully", workers=[worker])
        seen_leaving(harness, worker)
    try:
        started = time.monotonic()
        future = run.scatter("t0", (0,), 1, {"pose": 1})
        assert future.result(timeout=10) == {"pose": 1}
        assert time.monotonic() - started < 2
    finally:
        if not gone:
            harness.client.run(set_status, "running", workers=[worker])
    assert [e["type"] for e in history.events] == ["scatter", "lockstep-diverged"]
    assert worker not in harness.client.who_has(future)[future.key]
    assert hooks.placed_steps == [("t0", (0,), 1)]
    future.release()


def _registered(dask_scheduler=None) -> dict[str, int]:
    return {address: ws.pid for address, ws in dask_scheduler.workers.items()}


def test_a_scatter_to_a_worker_its_nanny_is_restarting_waits_for_it(harness, tmp_path,
                                                                   monkeypatch):
    """Nightly --seed 7171's `s035`: the worker the original's scatter went to was one its
    nanny had restarted at the same address after a segfault. In the replays it was
    back 20 ms after the scatter, which went elsewhere at once, and the output the
    original lost was delivered. The scatter now waits for it (within its bound)."""
    monkeypatch.setattr(base, "PLACED_SCATTER_WAIT", 5.0)  # a loaded host restarts slowly
    harness.settle(timeout=30)
    address, pid = sorted(harness.client.run_on_scheduler(_registered).items())[0]
    hooks = SendsTo(address)
    history = HistoryWriter()
    run = TargetRun(harness.client, TWO_STEPS, [], TargetConfig(), history, tmp_path,
                    lockstep=hooks)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while address in harness.client.run_on_scheduler(_registered):  # removed
        assert time.monotonic() < deadline, f"{address} was not removed after its SIGKILL"
        time.sleep(0.005)
    future = run.scatter("t0", (0,), 1, {"pose": 1})
    assert future.result(timeout=10) == {"pose": 1}
    assert [e["type"] for e in history.events] == ["scatter"], history.events
    assert harness.client.who_has(future)[future.key] == (address,)
    assert harness.client.run_on_scheduler(_registered)[address] != pid  # the new process
    future.release()
