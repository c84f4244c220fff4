"""The recommendation policy on hand-written predictions: cost-aware, never a lossy setting
when a lossless one meets the objective, and honest when nothing does."""

from __future__ import annotations

from experiments import parse_study
from experiments.recommend import MeasuredCell, recommend
from experiments.simulation import CellPrediction
from tests.experiments.test_study_loader import tiny


def study():
    data = tiny()
    data["axes"] = {"max_task_replicas": [0, 2], "task_registry": ["none", "disk"]}
    data["preemption"]["rates"] = [0, 2]
    data["objective"] = {"max_failure_probability": 0.001, "max_memory_per_worker": "1MB",
                         "tie_tolerance": 0.05}
    return parse_study(data, source="policy.toml")


def predicted(cell, makespan, failure=0.0, memory=1000.0):
    return CellPrediction(cell=cell, mode="model", runs=100, makespan_mean=makespan,
                          makespan_ci=(makespan * 0.98, makespan * 1.02),
                          makespan_p95=makespan * 1.1, overhead=None, overhead_ci=None,
                          failure_probability=failure, failure_upper=failure + 0.01,
                          goodput=0.5, wasted_seconds=0.0, memory_bytes_per_worker=memory,
                          replica_bytes_per_worker=0.0, kills=0.0, makespans=(makespan,))


def label(cell):
    return cell.setting_label


def choose(figures, measured=None):
    """figures: setting label -> (rate -> (makespan, failure, memory))."""
    the_study = study()
    predictions = [predicted(cell, *figures[label(cell)][cell.rate])
                   for cell in the_study.cells()]
    content = recommend(the_study, predictions, measured or {}, validated=True)
    return {entry["preemption_rate"]: entry for entry in content["recommendations"]}


FIGURES = {
    # setting: {rate: (makespan, P(task failed), memory per worker)}
    "r=0 reg=none": {0: (10.0, 0, 1e3), 2: (11.0, 0.02, 1e3)},
    "r=0 reg=disk": {0: (10.3, 0, 1e3), 2: (13.0, 0.0, 1e3)},
    "r=2 reg=none": {0: (9.8, 0, 2e3), 2: (11.5, 0.0005, 2e3)},  # fastest at 0, by a tie
    "r=2 reg=disk": {0: (10.4, 0, 2e3), 2: (12.0, 0.0, 2e3)},
}


def test_with_no_preemption_the_cheapest_of_the_ties_wins_no_replicas():
    chosen = choose(FIGURES)[0]
    assert chosen["settings"]["max_task_replicas"] == 0
    assert chosen["settings"]["task_registry"] is None
    assert chosen["meets_objective"]


def test_a_setting_that_may_lose_tasks_is_set_aside_for_one_that_loses_none():
    chosen = choose(FIGURES)[2]
    # r=2 reg=none is faster and within the failure bound, but may lose tasks
    assert (chosen["settings"]["max_task_replicas"], chosen["settings"]["task_registry"]) == (
        2, "disk")
    assert "r=2 reg=none" in chosen["why"] and "deliver everything" in chosen["why"]


def test_a_setting_that_lost_tasks_for_real_is_not_recommended():
    the_study = study()
    lost = {cell.id: MeasuredCell(1, 1, 0, 12.0) for cell in the_study.cells()
            if cell.rate == 2 and label(cell) == "r=2 reg=disk"}
    chosen = choose(FIGURES, lost)[2]
    assert label_of(chosen) == ("r=0", "disk")


def test_memory_bound_and_nothing_feasible():
    figures = {name: dict(values) for name, values in FIGURES.items()}
    for name in figures:
        figures[name][2] = (12.0, 0.2, 5e6)
    chosen = choose(figures)[2]
    assert not chosen["meets_objective"]
    assert "No setting" in chosen["why"]


def label_of(entry):
    settings = entry["settings"]
    return f"r={settings['max_task_replicas']}", settings["task_registry"]


def test_without_a_registry_a_setting_may_lose_tasks_however_rare_the_simulator_finds_it():
    figures = {name: dict(values) for name, values in FIGURES.items()}
    figures["r=2 reg=none"][2] = (11.5, 0.0, 2e3)  # no loss in the simulated runs
    chosen = choose(figures)[2]
    assert chosen["settings"]["task_registry"] == "disk"
    assert "r=2 reg=none" in chosen["why"]
