"""Coverage: each landed fault falls in one (kind, lifecycle window) cell; the cells that
cannot exist in a configuration (holders, with inline inputs) are not counted."""

from __future__ import annotations

from chaos.analysis import coverage_summary, fault_windows
from tests.checker.histories import HistoryBuilder


def fault_at(history: HistoryBuilder, execution: str, worker: int, trigger: dict,
             role: str = "running", kind: str = "sigkill") -> None:
    history.emit("fault", fault_id=f"f{len(history.events)}", kind=kind,
                 trigger={**trigger, "execution": execution}, target={"role": role},
                 worker=history.workers[worker], pid=100 + worker, fired_at=history.clock,
                 landed_at=history.clock + 0.001, noticed_at=history.clock + 0.1)


def test_each_landed_fault_falls_in_its_window():
    history = HistoryBuilder(workers=3, task_registry="memory")
    history.events[0]["workload"] = {"n_steps": 2}
    running = history.invoke("a", step=1, worker=0)
    fault_at(history, running, 0, {"type": "at-step", "step": 1, "point": "progress"})
    fault_at(history, running, 1, {"type": "input-held", "step": 1, "point": "invoke"},
             role="replica-holder", kind="retire")
    fault_at(history, running, 2, {"type": "result-ready", "step": 1}, role="random")
    history.outcome(running, "info")
    history.end()

    assert fault_windows(history.events) == [
        ("sigkill", "running step 1"), ("retire", "replica holder"),
        ("sigkill", "between steps")]
    coverage = coverage_summary([history.events], kinds=("sigkill", "retire"))
    assert coverage["cells"] == 2 * 6 and coverage["covered"] == 3
    assert "retire @ input holder" in coverage["missing"]


def test_inline_inputs_have_no_holder_cells():
    history = HistoryBuilder(workers=3, scatter=False)
    history.events[0]["workload"] = {"n_steps": 2}
    history.end()
    coverage = coverage_summary([history.events], kinds=("sigkill",))
    assert coverage["cells"] == 4
    assert not any("holder" in cell for cell in coverage["missing"])


def test_raw_dask_has_no_replica_holder_cells():
    # One copy of each input, held by the worker running its step; the library's own
    # configurations keep their shared input on every worker, even without replicas.
    cells = {}
    for target in ("dask-raw", "resilience"):
        history = HistoryBuilder(target, workers=3, scatter=True, max_task_replicas=0)
        history.events[0]["workload"] = {"n_steps": 2}
        history.end()
        cells[target] = coverage_summary([history.events], kinds=("sigkill",))
    assert cells["dask-raw"]["cells"] == 5
    assert "sigkill @ replica holder" not in cells["dask-raw"]["missing"]
    assert cells["resilience"]["cells"] == 6
