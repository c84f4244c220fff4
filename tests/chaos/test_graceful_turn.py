"""A lockstep replay keeps a graceful shutdown's timing. It lets a probe held for one go
as its original did: at once, before the shutdown fires (its original decided the
shutdown at the hit, let the probe go first, and fired after; the fault's turn can then
come after the client took that very result). And a step a nanny's close cut short
there ends only once the close has reached its worker here, and its result is lost."""

from __future__ import annotations

from collections.abc import Iterator

from chaos import ChaosCluster, Fault, FaultSchedule, RandomWorker, ResultReady, RunRecord
from chaos.harness import run_schedule
from chaos.harness.replay_order import first_workers
from chaos.workload import Workload
from tests.checker.histories import WORKERS, HistoryBuilder

FOUR = Workload(n_tasks=4, n_steps=2, payload_bytes=1_000, step_seconds=0.05, seed=2)
CLOSE_AT_T0 = FaultSchedule((Fault("nanny-close", ResultReady(step=0, task="t0"),
                                   RandomWorker(2)),), seed=0)


def replayed_twice(harness: ChaosCluster, original: list[dict]) -> Iterator[RunRecord]:
    """`CLOSE_AT_T0`, replayed in lockstep with `original`, twice running."""
    for _ in range(2):
        yield run_schedule(CLOSE_AT_T0, "dask-raw", {}, FOUR, harness, timeout=60,
                           replay_of=original)


def closed_after_its_result_was_taken() -> list[dict]:
    """A made original (nightly --seed 9753's `s007`, cut down): f0, a nanny-close armed
    at t0's result, fired only after the client had taken that result and submitted
    t0's step 1."""
    original = HistoryBuilder("dask-raw", workers=3)
    for task in ("t0", "t1", "t2", "t3"):
        original.submit(task)
    x0, x1, x2 = (original.invoke(task, worker=n) for n, task in enumerate(("t0", "t1", "t2")))
    at_t0 = {"type": "result-ready", "step": 0, "task": "t0", "task_id": "t0",
             "execution": x0, "point": "result", "fraction": 1.0}
    original.emit("probe", execution=x0, step=0, point="result", fraction=1.0,
                  task_id="t0", armed=["f0"], worker=original.workers[0])
    original.outcome(x0, seconds=0.01)
    original.invoke("t3", worker=0)
    original.emit("step-completed", task_id="t0", index=[], step=0, attempt=1, key="t0",
                  n_outputs=1)
    original.emit("scatter", task_id="t0", index=[0], step=1)
    original.submit("t0", (0,), 1)
    original.emit("fault", fault_id="f0", kind="nanny-close", trigger=at_t0,
                  worker=original.workers[2], pid=102, fired_at=original.clock,
                  landed_at=original.clock + 0.03, noticed_at=original.clock + 0.03)
    for execution in (x1, x2):
        original.outcome(execution)
    original.end()
    return original.events


def test_a_graceful_shutdown_due_after_its_result_was_taken_lets_the_probe_go_first(harness):
    """Held until f0's turn, t0's result never came, and the client never got there: both
    waited out their patience (`lockstep-diverged`), and f0 fired late."""
    for record in replayed_twice(harness, closed_after_its_result_was_taken()):
        [fault] = record.events("fault")
        [submit] = [e for e in record.events("submit") if e["step"] == 1 and e["task_id"] == "t0"]
        assert submit["time"] < fault["fired_at"] < submit["time"] + 0.3, (submit, fault)
        held = [e for e in record.events("lockstep-diverged")
                if e["waiting"] in ("fault f0", "the client's scatter for a result")]
        assert not held, held


def closed_as_t1_ran() -> list[dict]:
    """`closed_after_its_result_was_taken`, but f0 closes t1's worker, whose step began
    with t0's and never ended: the close reached it first."""
    events = closed_after_its_result_was_taken()
    x1 = next(e["execution"] for e in events if e["type"] == "invoke" and e["task_id"] == "t1")
    return [{**e, "worker": WORKERS[1], "pid": 101} if e["type"] == "fault" else e
            for e in events if not (e["type"] == "ok" and e["execution"] == x1)]


def test_a_step_a_nanny_close_cut_short_ends_only_as_the_close_reaches_its_worker(harness):
    """Replayed without the rule, t1's step is done some 15 ms before f0 is due (after
    the client took t0 and submitted its step 1) and t1 is taken."""
    for record in replayed_twice(harness, closed_as_t1_ran()):
        [fault] = record.events("fault")
        assert fault["worker"] == first_workers(record.history)[1], fault
        taken = [e["task_id"] for e in record.events("step-completed") if e["step"] == 0]
        assert "t1" not in taken, (taken, record.events("lockstep-diverged"))
