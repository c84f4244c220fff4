"""The recommendation: per preemption rate, the setting a person should use, and why.

Policy, in order:
1. feasible: predicted P(a task is reported failed) <= the objective's bound, and
   memory per worker within its bound;
2. among those, when any setting delivers everything, only those: a setting the model
   says may lose tasks is never recommended while one that delivers everything meets
   the objective. A setting may lose tasks when the simulator saw it fail one, when it
   lost one in the real runs, or, under any preemption, when it has no registry: then
   nothing brings back a step whose every input copy is gone (the harness's
   expected-outcome model lets such a setting fail), however rare the simulator finds it;
3. least expected makespan; settings within `tie_tolerance` of it tie, and the cheapest
   of a tie wins (fewest copies, then no registry, then "disk" before "memory": the
   same protection, durable, and no client memory). So at rate 0 no replicas.
With nothing feasible, the setting with the least failure probability is named, and
`meets_objective` says it does not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.calibration import effective_copies
from experiments.simulation import CellPrediction
from experiments.study import AXES, Study
from experiments.units import format_bytes, format_seconds

RECOMMENDATION_FILE = "recommendation.json"
_REGISTRY_COST = {None: 0, "disk": 1, "memory": 2}


@dataclass(frozen=True)
class MeasuredCell:
    """What the real runs of one cell showed (absent for simulation-only studies)."""

    runs: int
    failed_tasks: int
    violations: int
    makespan_mean: float


def recommend(study: Study, predictions: Sequence[CellPrediction],
              measured: Mapping[str, MeasuredCell], *, validated: bool | None,
              extrapolated_from: str | None = None) -> dict[str, Any]:
    """recommendation.json's content for `study` (predictions in the model's mode)."""
    objective = study.objective
    entries = []
    for rate in study.preemption.rates:
        candidates = [p for p in predictions if p.cell.rate == rate]
        entries.append(_one_rate(study, rate, candidates, measured))
    return {
        "study": study.name,
        "objective": objective.describe(),
        "simulator": {"validated": validated, "mode": "model",
                      "extrapolated_from": extrapolated_from},
        "recommendations": entries,
    }


def write_recommendation(content: Mapping[str, Any], folder: Path) -> Path:
    path = folder / RECOMMENDATION_FILE
    path.write_text(json.dumps(content, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _one_rate(study: Study, rate: float, candidates: Sequence[CellPrediction],
              measured: Mapping[str, MeasuredCell]) -> dict[str, Any]:
    objective = study.objective

    def lost_for_real(p: CellPrediction) -> bool:
        seen = measured.get(p.cell.id)
        return seen is not None and (seen.failed_tasks > 0 or seen.violations > 0)

    feasible = [p for p in candidates
                if p.failure_probability <= objective.max_failure_probability
                and not lost_for_real(p)
                and (objective.max_memory_per_worker is None
                     or p.memory_bytes_per_worker <= objective.max_memory_per_worker)]
    def may_lose(p: CellPrediction) -> bool:
        unprotected = p.cell.rate > 0 and p.cell.settings["task_registry"] is None
        return p.failure_probability > 0 or lost_for_real(p) or unprotected

    lossless = [p for p in feasible if not may_lose(p)]
    pool = lossless or feasible
    meets = bool(pool)
    if pool:
        best = min(p.makespan_mean for p in pool)
        ties = [p for p in pool if p.makespan_mean <= best * (1 + objective.tie_tolerance)]
        chosen = min(ties, key=lambda p: (_cost(p), p.makespan_mean))
    else:
        chosen = min(candidates, key=lambda p: (p.failure_probability, p.makespan_mean))
    excluded = [p for p in feasible if p not in pool]
    return {
        "preemption_rate": rate,
        "settings": _settings(study, chosen),
        "expected_makespan": chosen.makespan_mean,
        "expected_makespan_ci": list(chosen.makespan_ci),
        "makespan_overhead": chosen.overhead,
        "makespan_overhead_ci": None if chosen.overhead_ci is None else list(chosen.overhead_ci),
        "failure_probability": chosen.failure_probability,
        "failure_probability_upper_95": chosen.failure_upper,
        "memory_bytes_per_worker": chosen.memory_bytes_per_worker,
        "meets_objective": meets,
        "cell": chosen.cell.id,
        "why": _why(study, rate, chosen, meets, excluded, len(candidates)),
    }


def _cost(prediction: CellPrediction) -> tuple[int, int]:
    cell = prediction.cell
    copies = effective_copies(cell) if cell.settings["max_task_replicas"] not in (0,) else 0
    return copies, _REGISTRY_COST[cell.settings["task_registry"]]


def _settings(study: Study, prediction: CellPrediction) -> dict[str, Any]:
    cell = prediction.cell
    swept = [name for name, _ in study.axes]
    settings: dict[str, Any] = {name: cell.settings[name] for name in
                                ("max_task_replicas", "task_registry", "max_attempts")}
    for name in swept:
        if name in cell.settings:
            settings[name] = cell.settings[name]
        elif name in ("steps", "workers", "tasks", "payload_bytes"):
            settings[name] = getattr(cell, name)
        elif name == "step_duration":
            settings[name] = cell.step_duration_label
    return {name: value for name, value in settings.items() if name in AXES}


def _why(study: Study, rate: float, chosen: CellPrediction, meets: bool,
         excluded: Sequence[CellPrediction], considered: int) -> str:
    cell = chosen.cell
    replicas = cell.settings["max_task_replicas"]
    what = (f"task_registry={cell.settings['task_registry']!r}, max_task_replicas="
            f"{'None (every worker)' if replicas is None else replicas}")
    if any(name == "steps" for name, _ in study.axes):
        what += f", {cell.steps} step(s) of {cell.step_duration_label}"
    scale = 1.0 / study.preemption.compression
    when = (f"At {rate:g} preemptions per worker-hour with {cell.step_duration_label} steps "
            f"({cell.workers} workers, {cell.tasks} tasks)")
    cost = ""
    if chosen.overhead is not None and chosen.overhead_ci is not None:
        low, high = chosen.overhead_ci
        cost = (f"expect {chosen.overhead:+.0%} makespan against no preemption (95% CI "
                f"{low:+.0%} to {high:+.0%}), ")
    cost += (f"about {format_seconds(chosen.makespan_mean * scale)} in all, and "
             f"{format_bytes(chosen.memory_bytes_per_worker)} of step inputs per worker")
    risk = (f"P(a task is reported failed) = {chosen.failure_probability:.3g} (95% upper "
            f"bound {chosen.failure_upper:.2g}, {chosen.runs} simulated runs)")
    text = f"{when}: {what}; {cost}; {risk}."
    if excluded:
        names = ", ".join(sorted({p.cell.setting_label for p in excluded}))
        text += (f" Settings that met the objective but may lose tasks were set aside "
                 f"because others deliver everything: {names}.")
    if not meets:
        text += (f" No setting of the {considered} met the objective; this one fails "
                 "least. Raise max_attempts, add a registry, or shorten steps.")
    return text
