"""A retirement a lockstep replay holds open, and one the client's scatter met.

Nightly --seed 2525's `s008`: a retirement fired as its victim ran t2's step 0, which
was done there 8 ms later and moved with the rest; every replay, its moves made ahead
of it, ended the retirement at once and ran the step again elsewhere. And the client's
last scatter, under way as a later retirement fired, met it in the original; a replay
whose client scattered only as it fired went elsewhere once in 10.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from chaos.campaign import replay_runs
from chaos.harness import Inflictor
from chaos.harness.lockstep import Lockstep
from chaos.harness.replay_order import ReplayOrder
from chaos.harness.scatter_race import SCATTER_SENT
from chaos.history import HISTORY_FILE, HistoryWriter, read_history
from tests.checker.histories import HistoryBuilder

SCATTER_CLOSED = "CommClosedError: in <TCP (closed) ConnectionPool.scatter local=a remote=b>"


def retiring_as_steps_end(kind: str = "retire", lost: tuple[str, ...] = ("t1",)) -> list[dict]:
    """A shutdown (`kind`) of worker 0 fires as t0, t1 and t2 run there (one thread a
    worker is not what a history checks). t0 is done and moved; t1 is done and lost in
    the removal (and so is each other one of `lost`); t2 is done, never reaches the
    scheduler, and runs again elsewhere. t3 is done on worker 1, which no shutdown
    hit."""
    history = HistoryBuilder("dask-raw", workers=2)
    for task in ("t0", "t1", "t2", "t3"):
        history.submit(task)
    runs = {task: history.invoke(task, worker=0) for task in ("t0", "t1", "t2")}
    other = history.invoke("t3", worker=1)
    history.fault(worker=0, kind=kind, fault_id="f0", noticed=0.1)
    for task in runs:
        history.outcome(runs[task], seconds=0.01)
    history.outcome(other, seconds=0.01)
    history.wait(0.05)
    key = {e["execution"]: e["key"] for e in history.events if e["type"] == "invoke"}
    history.emit("worker-removed", worker=history.workers[0],
                 lost_computed_keys=[key[runs[task]] for task in lost])
    history.execute("t1", worker=1)
    history.execute("t2", worker=1)
    history.end()
    return history.events


def test_a_retirement_is_held_open_for_the_results_that_reached_the_scheduler_as_it_retired():
    races = ReplayOrder.of(retiring_as_steps_end()).death_races
    assert races.moved_late == {"f0": (("t0", (), 0, 1),)}
    assert races.lost_late == {"f0": (("t1", (), 0, 1),)}  # lost in the removal
    # A nanny's close moves nothing: its late results wait as before.
    closed = ReplayOrder.of(retiring_as_steps_end("nanny-close")).death_races
    assert (closed.moved_late, closed.lost_late) == ({}, {})


def test_the_replay_holds_it_open_for_its_own_keys_of_those_steps():
    original = retiring_as_steps_end()
    lockstep = Lockstep(ReplayOrder.of(original), shared_board=False)
    writer = HistoryWriter()
    writer.emit("run-start", workers=[{"address": "tcp://h:1", "pid": 1}])
    lockstep.start(writer)
    try:
        assert lockstep.places.held_open("f0") == ([], False)  # not submitted here yet
        writer.emit("submit", task_id="t0", index=[], step=0, key="here-t0")
        writer.emit("submit", task_id="t1", index=[], step=0, key="here-t1")
        writer.emit("submit", task_id="t2", index=[], step=0, key="here-t2")
        # t0's result was moved, t1's lost: moved, as the one the original kept.
        assert lockstep.places.held_open("f0") == (["here-t0", "here-t1"], False)
        assert lockstep.places.held_open("f1") == ([], False)
    finally:
        lockstep.stop()
    lockstep = Lockstep(ReplayOrder.of(retiring_as_steps_end(lost=("t0", "t1"))),
                        shared_board=False)
    lockstep.start(writer)
    try:  # both lost in the removal: the retirement ends by removing its victim
        assert lockstep.places.held_open("f0") == (["here-t0", "here-t1"], True)
    finally:
        lockstep.stop()


def _sleep_and_say(path: str, seconds: float) -> str:
    from distributed import get_worker

    time.sleep(seconds)
    with open(path, "a") as ran:
        ran.write(get_worker().address + "\n")
    return "done"


@pytest.mark.parametrize("lose", [False, True], ids=["moved", "lost"])
def test_a_retirement_held_open_lets_the_step_its_victim_runs_finish_there(harness,
                                                                          tmp_path: Path,
                                                                          lose: bool):
    """On the harness cluster: a retirement fired 0.2 s into a 0.4 s step on its victim
    ends only once the step is done there; then it moves its result, and the step runs
    once; or, as one whose original lost that result, removes its victim, and Dask runs
    the step again elsewhere. A plain retirement ends at once, and Dask runs the step
    again elsewhere before it is done."""
    harness.settle(timeout=30)
    victim = sorted(harness.refresh().workers.values(), key=lambda v: v.address)[0]
    ran = tmp_path / "ran"
    future = harness.client.submit(_sleep_and_say, str(ran), 0.4, workers=[victim.address],
                                   allow_other_workers=lose, pure=False)
    deadline = time.monotonic() + 10
    while not harness.client.processing().get(victim.address):
        assert time.monotonic() < deadline, "the step never started on its worker"
        time.sleep(0.01)
    time.sleep(0.2)
    landing, running = Inflictor(harness.client).retire_holding_open(
        victim, [future.key], patience=5.0, lose=lose)
    try:
        assert landing.error is None and landing.landed_at is not None, landing.error
        assert running == []
        assert future.result(timeout=10) == "done"
        runs = ran.read_text().splitlines()
        assert runs[0] == victim.address  # done there first
        holders = harness.client.who_has(future)[future.key]
        assert holders and victim.address not in holders  # moved, or made again
        assert len(runs) == (2 if lose else 1), runs
    finally:
        future.release()
        harness.settle(timeout=30)


def scatter_meets_a_retirement(*, fired_before: bool = False, error: str | None = SCATTER_CLOSED,
                               kind: str = "retire", kill_first: bool = False) -> list[dict]:
    """The client scatters t1's next input; the retirement (or `kind`) of worker 0 fires
    0.1 s later (or just before the scatter) and the scatter fails as its victim closes.
    `kill_first`: worker 2 is killed before the scatter, and noticed only after it."""
    original = HistoryBuilder("dask-raw", workers=3)
    original.submit("t1")
    original.outcome(original.invoke("t1", worker=1), seconds=0.01)
    original.emit("step-completed", task_id="t1", index=[], step=0, attempt=1, key="k1",
                  n_outputs=1)
    if fired_before:
        original.fault(worker=0, kind=kind, fault_id="f0", noticed=0.2)
    if kill_first:
        original.fault(worker=2, kind="sigkill", fault_id="f1", noticed=0.3)
    original.emit("scatter", task_id="t1", index=[0], step=1)
    original.wait(0.1)
    if not fired_before:
        original.fault(worker=0, kind=kind, fault_id="f0", noticed=0.01)
    original.end("failed" if error else "completed", error=error)
    return original.events


def test_the_shutdown_a_scatter_under_way_met_is_read_with_that_scatter():
    assert ReplayOrder.of(scatter_meets_a_retirement()).shutdown_met_in_scatter == {"f0": 1}
    assert ReplayOrder.of(scatter_meets_a_retirement(kind="nanny-close")
                          ).shutdown_met_in_scatter == {"f0": 1}
    # Fired before the scatter: the client's wait at its landmark keeps that order.
    assert ReplayOrder.of(scatter_meets_a_retirement(fired_before=True)
                          ).shutdown_met_in_scatter == {}
    # The scatter went through: nothing met it.
    assert ReplayOrder.of(scatter_meets_a_retirement(error=None)).shutdown_met_in_scatter == {}
    # A kill met it (`met_in_scatter`, held by its own race).
    assert ReplayOrder.of(scatter_meets_a_retirement(kind="sigkill")
                          ).shutdown_met_in_scatter == {}
    killed = ReplayOrder.of(scatter_meets_a_retirement(kill_first=True))
    assert (killed.met_in_scatter, killed.shutdown_met_in_scatter) == ({"f1": (1, True, True)},
                                                                       {})


def test_such_a_shutdown_lands_once_the_client_has_made_that_scatter():
    """The client, at its last landmark before the shutdown fired there, is let go as
    it comes to fire (else each would wait for the other), and the shutdown lands once
    the client's scatter has had SCATTER_SENT to reach the scheduler."""
    lockstep = Lockstep(ReplayOrder.of(scatter_meets_a_retirement()), patience=2.0,
                        shared_board=False)
    writer = HistoryWriter()
    lockstep.start(writer)
    landed = threading.Event()
    at_landmark = threading.Event()
    scattered: list[float] = []

    def client() -> None:
        writer.emit("submit", task_id="t1", index=[], step=0, key="k1")
        at_landmark.set()
        writer.emit("step-completed", task_id="t1", index=[], step=0, key="k1")  # waits
        time.sleep(0.1)
        scattered.append(time.monotonic())
        writer.emit("scatter", task_id="t1", index=[0], step=1, key="k")

    threads = [threading.Thread(target=client),
               threading.Thread(target=lambda: (lockstep.before_landing("f0"), landed.set()))]
    try:
        threads[0].start()
        assert at_landmark.wait(1.0)
        started = time.monotonic()
        threads[1].start()
        assert landed.wait(1.5)
        assert scattered and time.monotonic() - scattered[0] >= SCATTER_SENT
        assert time.monotonic() - started < 1.0  # neither waited out its patience
        assert not [e for e in writer.events if e["type"] == "lockstep-diverged"]
    finally:
        lockstep.stop()
        for thread in threads:
            thread.join(2)


ORIGINALS = Path(__file__).parent / "originals"


def test_nightly_2525_s008_replays_with_its_retirement_held_open(harness, tmp_path: Path):
    """The run itself, replayed twice: each time its first retirement is held open for
    t2's step 0, which its victim finishes and which runs only there, and the run loses
    what its original lost."""
    runs = tmp_path / "runs"
    shutil.copytree(ORIGINALS / "nightly-2525-s008", runs / "s008-dask-raw-scatter")
    report = replay_runs([runs / "s008-dask-raw-scatter"], harness, 2, tmp_path / "replays")
    for replay in sorted((tmp_path / "replays" / "s008-dask-raw-scatter").iterdir()):
        history = read_history(replay / HISTORY_FILE)
        [retired] = [e for e in history if e["type"] == "fault" and e["fault_id"] == "f1"]
        assert len(retired["held_open"]["keys"]) == 1 and not retired["held_open"]["lost"]
        runs_of_t2 = [e["worker"] for e in history
                      if e["type"] == "invoke" and (e["task_id"], e["step"]) == ("t2", 0)]
        assert runs_of_t2 == [retired["worker"]]
    [run] = report.runs
    assert run.matches == 2, report.to_dict()
