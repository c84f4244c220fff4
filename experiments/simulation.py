"""The simulator applied to a study: specs per cell, predictions, the steal fit, validation.

Two modes. "harness" imitates what the real runs could do: the harness's firing caps,
a SIGTERM stand-in for preemption with notice that takes the worker away for the rest
of the run, the nanny's measured restart after a SIGKILL; it is what is validated
against the measurements, on the very seeds (step durations, fault times) of the real
runs. "model" is the study's preemption model as declared: notice periods honoured,
every lost worker replaced after the study's `replacement` delay, no caps; it is what
the recommendation and the extrapolation use.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats

from chaos import Poisson
from experiments.calibration import STEAL_CANDIDATES, Calibration, MeasuredRun, effective_copies
from experiments.preemption import fault_schedule, harness_kind, per_kind_rates
from experiments.runner import expected_makespan, run_seed
from experiments.sim_spec import PreemptionSource, SimOutcome, SimSpec
from experiments.simulator import simulate
from experiments.study import Cell, Study

Mode = Literal["harness", "model"]
SIMULATION_FILE = "simulation.csv"
VALIDATION_FILE = "validation.json"
SIMS_PER_MEASURED_SEED = 8


@dataclass(frozen=True)
class CellPrediction:
    """The simulator's figures for one cell, over `runs` simulated runs."""

    cell: Cell
    mode: Mode
    runs: int
    makespan_mean: float
    makespan_ci: tuple[float, float]  # 95% interval of the mean
    makespan_p95: float
    overhead: float | None  # mean makespan / the same setting's at rate 0, minus 1
    overhead_ci: tuple[float, float] | None
    failure_probability: float  # P(a task is reported failed)
    failure_upper: float  # 95% Clopper-Pearson upper bound over every simulated task
    goodput: float
    wasted_seconds: float
    memory_bytes_per_worker: float  # mean peak of inputs held by one worker
    replica_bytes_per_worker: float
    kills: float
    makespans: tuple[float, ...]

    def row(self) -> dict[str, Any]:
        replicas = self.cell.settings["max_task_replicas"]
        return {"cell": self.cell.id, "mode": self.mode, "preemption_rate": self.cell.rate,
                "max_task_replicas": "all" if replicas is None else replicas,
                "task_registry": self.cell.settings["task_registry"] or "none",
                "max_attempts": self.cell.settings["max_attempts"],
                "workers": self.cell.workers, "tasks": self.cell.tasks, "steps": self.cell.steps,
                "runs": self.runs, "makespan_mean": self.makespan_mean,
                "makespan_ci_low": self.makespan_ci[0], "makespan_ci_high": self.makespan_ci[1],
                "makespan_p95": self.makespan_p95,
                "overhead": "" if self.overhead is None else self.overhead,
                "failure_probability": self.failure_probability,
                "failure_upper": self.failure_upper, "goodput": self.goodput,
                "wasted_seconds": self.wasted_seconds,
                "memory_bytes_per_worker": self.memory_bytes_per_worker,
                "replica_bytes_per_worker": self.replica_bytes_per_worker,
                "kills": self.kills}


def sim_spec(study: Study, cell: Cell, calibration: Calibration, mode: Mode, seed: int
             ) -> SimSpec:
    """The simulated run of `cell`; in harness mode, with the real run's fault times."""
    model = study.preemption
    rates = per_kind_rates(model, cell.rate, cell.workers)
    costs = calibration.costs_for(cell)
    replacement = dict(study.simulation.replacement)
    sources = []
    if mode == "harness":
        schedule = fault_schedule(model, cell, seed, expected_makespan(cell))
        by_kind: dict[str, list[float]] = {
            fault.kind: fault.trigger.times() for fault in schedule.faults
            if isinstance(fault.trigger, Poisson)}
        for share, rate in zip(model.mix, rates, strict=True):
            mapped = harness_kind(share)
            times = tuple(by_kind.get(mapped.kind, []))
            notice = (share.notice * model.compression if not mapped.substituted
                      else costs.notice_leave) if share.kind == "notice" else 0.0
            sources.append(PreemptionSource(share.kind, rate, notice,
                                            costs.restart if mapped.replaced_mid_run else None,
                                            times=times))
        timeout = study.run_timeout
    else:
        for share, rate in zip(model.mix, rates, strict=True):
            sources.append(PreemptionSource(
                share.kind, rate, share.notice * model.compression,
                replacement[share.kind] * model.compression))
        timeout = max(study.run_timeout, 200 * expected_makespan(cell))
    return SimSpec(
        workers=cell.workers, tasks=cell.tasks, steps=cell.steps, fanout=cell.fanout,
        payload_bytes=cell.payload_bytes, duration=cell.step_duration, duration_seed=seed,
        copies=None if cell.settings["max_task_replicas"] is None else effective_copies(cell),
        registry=cell.settings["task_registry"], max_attempts=cell.settings["max_attempts"],
        scatter=cell.settings["scatter"], sources=tuple(sources), timeout=timeout)


def predict(study: Study, calibration: Calibration, mode: Mode,
            repetitions: int | None = None) -> list[CellPrediction]:
    """Every cell of the study, simulated `repetitions` times (fresh seeds)."""
    runs = repetitions or study.simulation.repetitions
    outcomes: dict[str, list[SimOutcome]] = {}
    for cell in study.cells():
        costs = calibration.costs_for(cell)
        outcomes[cell.id] = []
        for number in range(runs):
            seed = run_seed(study, cell, 10_000 + number)
            outcomes[cell.id].append(simulate(sim_spec(study, cell, calibration, mode, seed),
                                              costs, seed))
    return summarise(study, outcomes, mode)


def summarise(study: Study, outcomes: Mapping[str, Sequence[SimOutcome]], mode: Mode
              ) -> list[CellPrediction]:
    cells = {cell.id: cell for cell in study.cells()}
    reference = {_setting_key(cells[cid]): cid for cid in outcomes if cells[cid].rate == 0}
    predictions = []
    for cell_id, runs in outcomes.items():
        cell = cells[cell_id]
        spans = np.array([o.makespan for o in runs])
        failed = sum(o.tasks_failed for o in runs)
        tasks = cell.tasks * len(runs)
        base_id = reference.get(_setting_key(cell))
        overhead = overhead_ci = None
        if base_id is not None:
            base = np.array([o.makespan for o in outcomes[base_id]])
            overhead = float(spans.mean() / base.mean() - 1)
            overhead_ci = _ratio_ci(spans, base)
        predictions.append(CellPrediction(
            cell=cell, mode=mode, runs=len(runs), makespan_mean=float(spans.mean()),
            makespan_ci=_mean_ci(spans), makespan_p95=float(np.percentile(spans, 95)),
            overhead=overhead, overhead_ci=overhead_ci,
            failure_probability=failed / tasks,
            failure_upper=float(stats.beta.ppf(0.95, failed + 1, tasks - failed)),
            goodput=statistics.fmean(o.useful_seconds / (cell.workers * o.makespan)
                                     for o in runs if o.makespan > 0),
            wasted_seconds=statistics.fmean(o.wasted_seconds for o in runs),
            memory_bytes_per_worker=statistics.fmean(o.peak_worker_input_bytes for o in runs),
            replica_bytes_per_worker=statistics.fmean(o.peak_replica_bytes_per_worker
                                                      for o in runs),
            kills=statistics.fmean(o.kills for o in runs),
            makespans=tuple(float(s) for s in spans)))
    return predictions


def write_simulation(predictions: Sequence[CellPrediction], folder: Path) -> Path:
    path = folder / SIMULATION_FILE
    rows = [p.row() for p in predictions]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------------------- validation


def harness_predictions(study: Study, calibration: Calibration,
                        measured: Sequence[MeasuredRun]) -> dict[str, list[SimOutcome]]:
    """The measured cells in harness mode, on each measured run's own seed."""
    outcomes: dict[str, list[SimOutcome]] = defaultdict(list)
    for run in measured:
        costs = calibration.costs_for(run.cell)
        spec = sim_spec(study, run.cell, calibration, "harness", run.seed)
        for number in range(SIMS_PER_MEASURED_SEED):
            outcomes[run.cell.id].append(simulate(spec, costs, run.seed * 100 + number))
    return outcomes


def fit_steal(study: Study, calibration: Calibration, measured: Sequence[MeasuredRun]
              ) -> Calibration:
    """Choose `steal_after` so the fault-free runs' makespans are best predicted."""
    reference = [run for run in measured if run.cell.rate == 0]
    if not reference:
        return calibration
    best: tuple[float, float] | None = None
    for candidate in STEAL_CANDIDATES:
        trial = calibration.with_steal_after(candidate)
        errors = []
        for run in reference:
            spec = sim_spec(study, run.cell, trial, "harness", run.seed)
            simulated = simulate(spec, trial.costs_for(run.cell), run.seed).makespan
            real = _makespan(run)
            errors.append(abs(simulated - real) / real)
        score = statistics.median(errors)
        if best is None or score < best[0] - 1e-9:
            best = (score, candidate)
    assert best is not None
    return calibration.with_steal_after(best[1])


def validate(study: Study, measured: Sequence[MeasuredRun],
             outcomes: Mapping[str, Sequence[SimOutcome]], folder: Path) -> dict[str, Any]:
    """Per measured cell: measured and predicted mean makespan and failure probability."""
    by_cell: dict[str, list[MeasuredRun]] = defaultdict(list)
    for run in measured:
        by_cell[run.cell.id].append(run)
    cells: list[dict[str, Any]] = []
    for cell_id, runs in by_cell.items():
        cell = runs[0].cell
        real_span = statistics.fmean(_makespan(r) for r in runs)
        real_fail = sum(_failed(r) for r in runs) / (cell.tasks * len(runs))
        simulated = outcomes[cell_id]
        sim_span = statistics.fmean(o.makespan for o in simulated)
        sim_fail = sum(o.tasks_failed for o in simulated) / (cell.tasks * len(simulated))
        floor = 1.0 / (cell.tasks * len(runs))  # one task in the measured runs
        cells.append({
            "cell": cell_id, "preemption_rate": cell.rate, "setting": cell.setting_label,
            "runs": len(runs),
            "makespan": {"measured": real_span, "predicted": sim_span,
                         "relative_error": abs(sim_span - real_span) / real_span},
            "failure_probability": {
                "measured": real_fail, "predicted": sim_fail,
                "absolute_error": abs(sim_fail - real_fail),
                "relative_error": abs(sim_fail - real_fail) / max(real_fail, floor)},
        })
    makespan_errors = [c["makespan"]["relative_error"] for c in cells]
    failure_errors = [c["failure_probability"]["absolute_error"] for c in cells]
    median_error = statistics.median(makespan_errors) if makespan_errors else math.inf
    report = {
        "study": study.name, "mode": "harness", "cells": cells,
        "median_relative_error": median_error,
        "median_relative_error_means": "of the mean makespan, over the measured cells",
        "median_absolute_error_failure_probability": (
            statistics.median(failure_errors) if failure_errors else None),
        "max_median_relative_error": study.simulation.max_median_relative_error,
        "validated": median_error <= study.simulation.max_median_relative_error,
        "simulated_runs_per_measured_run": SIMS_PER_MEASURED_SEED,
    }
    (folder / VALIDATION_FILE).write_text(json.dumps(report, indent=2) + "\n",
                                          encoding="utf-8")
    return report


def _makespan(run: MeasuredRun) -> float:
    end = next((e for e in run.history if e["type"] == "run-end"), None)
    return float(end["makespan"]) if end else run.history[-1]["time"] - run.history[0]["time"]


def _failed(run: MeasuredRun) -> int:
    return len({e["task_id"] for e in run.history if e["type"] == "task-failed"})


def _setting_key(cell: Cell) -> str:
    data = {**cell.to_json(), "rate": None, "id": None}
    return json.dumps(data, sort_keys=True, default=str)


def _mean_ci(values: np.ndarray) -> tuple[float, float]:
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def _ratio_ci(values: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    """95% bootstrap interval of mean(values) / mean(base) - 1."""
    rng = np.random.default_rng(0)
    draws = [rng.choice(values, len(values)).mean() / rng.choice(base, len(base)).mean() - 1
             for _ in range(400)]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def prediction_json(prediction: CellPrediction) -> dict[str, Any]:
    data = asdict(prediction)
    data["cell"] = prediction.cell.to_json()
    data.pop("makespans")
    return data
