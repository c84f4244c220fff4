"""The order the original's steps started in (chaos.harness.start_order): how a replay
ranks its submissions, and, on the shared harness cluster, that each worker starts its
steps in the original's order where Dask alone would not."""

from __future__ import annotations

from chaos import FaultSchedule
from chaos.harness import run_schedule
from chaos.harness.lockstep import Lockstep
from chaos.harness.replay_order import ReplayOrder
from chaos.harness.start_order import priority, start_ranks
from chaos.history import HistoryWriter
from chaos.workload import Workload
from tests.checker.histories import HistoryBuilder

NINE = Workload(n_tasks=9, n_steps=1, payload_bytes=1_000, step_seconds=0.05, seed=5)


def test_each_submission_ranks_where_its_first_execution_started():
    history = HistoryBuilder("prc630", workers=2)
    for task in ("t0", "t1", "t2"):
        history.submit(task)
    history.execute("t2", worker=1)
    history.execute("t0", worker=0)
    history.execute("t2", worker=0)  # Dask ran it again (its worker died): still 1st
    history.submit("t0", attempt=2, reason="lost-input")
    history.execute("t0", worker=1, attempt=2)
    history.end()
    ranks = start_ranks(history.events)
    t0, t1, t2 = (("t0", (), 0), ("t1", (), 0), ("t2", (), 0))
    assert ranks == {(t2, 1): 1, (t0, 1): 2, (t0, 2): 3}
    assert [priority(ranks, s) for s in ((t2, 1), (t0, 1), (t0, 2), (t1, 1))] == [3, 2, 1, 0]


def test_a_replay_gives_each_submit_of_a_step_the_priority_of_its_own_rank():
    history = HistoryBuilder("prc630", workers=2)
    history.submit("t0")
    history.submit("t1")
    history.execute("t1")
    history.execute("t0")
    history.submit("t0", attempt=2, reason="lost-input")
    history.execute("t0", attempt=2)
    history.end()
    lockstep = Lockstep(ReplayOrder.of(history.events), shared_board=False)
    lockstep.start(HistoryWriter())
    assert [lockstep.priority(("t0", (), 0)), lockstep.priority(("t1", (), 0)),
            lockstep.priority(("t0", (), 0)), lockstep.priority(("t0", (), 0))] == [2, 3, 1, 0]
    lockstep.stop()


def test_a_lockstep_replay_starts_each_workers_steps_in_the_originals_order(harness):
    """A made original in which each worker ran its three steps in the order they were
    submitted (t0, t3, t6 on the first worker). Dask, given three steps at once, runs
    the first and then the last submitted (t0, t6, t3); a replay keeps to the original,
    twice running."""
    original = HistoryBuilder("dask-raw", workers=3)
    tasks = [f"t{n}" for n in range(NINE.n_tasks)]
    for task in tasks:
        original.submit(task)
    for task in tasks:
        original.outcome(original.invoke(task, worker=int(task[1]) % 3))
        original.emit("step-completed", task_id=task, index=[], step=0, attempt=1, key=task,
                      n_outputs=1)
    original.end()
    for _ in range(2):
        record = run_schedule(FaultSchedule((), seed=0), "dask-raw", {}, NINE, harness,
                              timeout=60, replay_of=original.events)
        started: dict[str, list[str]] = {}
        for event in record.events("invoke"):
            started.setdefault(event["worker"], []).append(event["task_id"])
        assert sorted(started.values()) == [["t0", "t3", "t6"], ["t1", "t4", "t7"],
                                            ["t2", "t5", "t8"]], started
        assert not record.events("lockstep-diverged")
