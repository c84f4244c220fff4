"""A study, declared as data: the frozen dataclasses a study file is read into
(`experiments.study_file`), and the grid of cells it spans.

    study = load_study("replicas-vs-preemption")          # a built-in, by name
    study = load_study("my-study.toml", quick=True)      # a file, with its [quick] overrides
    for cell in study.cells(): ...

Times in a study are *model* times (what the user's cluster lives through: 10-minute
steps, a 120 s notice, rates per worker-hour). `preemption.seconds_per_hour` says how
many real seconds stand for one hour in the real runs; every model time is compressed
alike. A simulation-only study runs in model time (3600 s per hour). The format is
documented in README.md ("Studies") and in the built-in files, experiments/studies/.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from experiments.durations import Duration
from experiments.errors import StudyError
from experiments.units import format_seconds

Mode = Literal["real", "simulation"]
KindName = Literal["sudden", "notice"]

# Axes a study may sweep: the library's settings, then the workload's shape.
LIBRARY_SETTINGS = ("max_task_replicas", "task_registry", "max_attempts", "scatter",
                    "step_timeout", "worker_wait_timeout")
WORKLOAD_AXES = ("workers", "tasks", "steps", "step_duration", "payload_bytes")
AXES = LIBRARY_SETTINGS + WORKLOAD_AXES
_ABBREVIATIONS = {"max_task_replicas": "r", "task_registry": "reg", "max_attempts": "att",
                  "scatter": "sc", "step_timeout": "to", "worker_wait_timeout": "wwt",
                  "workers": "w", "tasks": "n", "steps": "k", "step_duration": "d",
                  "payload_bytes": "b"}
@dataclass(frozen=True)
class KindShare:
    """One kind of preemption in the mix: a sudden kill, or a kill after `notice` s."""

    kind: KindName
    weight: float
    notice: float = 0.0  # model seconds between SIGTERM and SIGKILL

    @property
    def label(self) -> str:
        return "sudden kill" if self.kind == "sudden" else (
            f"preemption with {format_seconds(self.notice)} notice")


@dataclass(frozen=True)
class PreemptionModel:
    """Poisson preemptions per worker at `rates` per worker-hour, of the kinds in `mix`."""

    rates: tuple[float, ...]
    seconds_per_hour: float
    mix: tuple[KindShare, ...]

    @property
    def compression(self) -> float:
        """Real seconds per model second."""
        return self.seconds_per_hour / 3600.0


@dataclass(frozen=True)
class Objective:
    """Least expected makespan such that P(a task fails) and memory per worker stay bounded.

    Among the settings that meet the constraints, any whose makespan is within
    `tie_tolerance` of the best counts as a tie, and the cheapest tie wins (fewest
    copies, then the lightest registry): a setting is not recommended for a gain the
    runs cannot tell from noise.
    """

    max_failure_probability: float = 0.001
    max_memory_per_worker: int | None = None
    tie_tolerance: float = 0.05

    def describe(self) -> str:
        memory = ("" if self.max_memory_per_worker is None
                  else f" and replica memory per worker <= {self.max_memory_per_worker / 1e9:g} GB")
        return (f"least expected makespan such that P(a task is reported failed) <= "
                f"{self.max_failure_probability:g}{memory} (ties within "
                f"{self.tie_tolerance:.0%}: the cheapest setting)")


@dataclass(frozen=True)
class SimulationSettings:
    """How the simulator is used: runs per cell, the validation bar, model-only costs.

    `replacement` is the model's delay before a lost worker is replaced, per kind, in
    model seconds (a new spot instance takes minutes): what the recommendation assumes,
    where the real runs could only show the harness's own replacement.
    """

    repetitions: int = 200
    max_median_relative_error: float = 0.25
    replacement: tuple[tuple[KindName, float], ...] = (("sudden", 180.0), ("notice", 180.0))


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a preemption rate, library settings and a workload shape.

    Times here are real seconds (the model's, compressed); `settings` holds only
    library settings (TargetConfig's keys plus worker_wait_timeout).
    """

    id: str
    rate: float  # preemptions per worker-hour (model)
    settings: Mapping[str, Any]
    workers: int
    tasks: int
    steps: int
    fanout: tuple[int, ...]
    payload_bytes: int
    step_duration: Duration  # real seconds
    step_duration_label: str  # as the study wrote it (model time)

    @property
    def setting_label(self) -> str:
        replicas = self.settings["max_task_replicas"]
        return (f"r={'all' if replicas is None else replicas} "
                f"reg={self.settings['task_registry'] or 'none'}")

    def workload_key(self) -> str:
        """Cells with the same key share fault times and step durations (paired design)."""
        return f"{self.rate:g}|{self.workers}|{self.tasks}|{self.steps}|{self.fanout}|" \
               f"{self.payload_bytes}|{self.step_duration.to_json()}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "rate": self.rate, "settings": dict(self.settings),
                "workers": self.workers, "tasks": self.tasks, "steps": self.steps,
                "fanout": list(self.fanout), "payload_bytes": self.payload_bytes,
                "step_duration": self.step_duration.to_json(),
                "step_duration_label": self.step_duration_label}


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    mode: Mode
    seed: int
    repetitions: int
    run_timeout: float  # real seconds before a run is declared hung
    preemption: PreemptionModel
    objective: Objective
    simulation: SimulationSettings
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    base: Mapping[str, Any]  # every axis name -> its value when not swept
    fanout: int | tuple[int, ...]
    chain_duration: float | None  # model seconds of a whole chain, split over `steps`
    calibration_from: str | None = None
    source: str = ""
    quick: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def cells(self) -> list[Cell]:
        """Every cell: the rates, crossed with every axis, in a stable order."""
        names = [name for name, _ in self.axes]
        cells = []
        for rate in self.preemption.rates:
            for values in itertools.product(*(v for _, v in self.axes)):
                chosen = {**self.base, **dict(zip(names, values, strict=True))}
                cells.append(self._cell(rate, chosen, dict(zip(names, values, strict=True))))
        return cells

    def _cell(self, rate: float, chosen: dict[str, Any], swept: dict[str, Any]) -> Cell:
        steps = int(chosen["steps"])
        fanout = (self.fanout,) * steps if isinstance(self.fanout, int) else self.fanout
        if len(fanout) != steps:
            raise StudyError(f"{self.source}: workload.fanout = {list(fanout)} has "
                             f"{len(fanout)} entries for steps = {steps}; give one per step, "
                             "or a single int when steps is an axis.")
        model_duration: Duration = chosen["step_duration"]
        label = model_duration.label()
        if self.chain_duration is not None:
            model_duration = Duration.constant(self.chain_duration / steps)
            label = f"{format_seconds(self.chain_duration)} / {steps}"
        parts = [f"rate{rate:g}"] + [f"{_ABBREVIATIONS[n]}{_slug(n, v)}" for n, v in swept.items()]
        return Cell(
            id="-".join(parts), rate=rate,
            settings={name: chosen[name] for name in LIBRARY_SETTINGS},
            workers=int(chosen["workers"]), tasks=int(chosen["tasks"]), steps=steps,
            fanout=tuple(fanout), payload_bytes=int(chosen["payload_bytes"]),
            step_duration=model_duration.scaled(self.preemption.compression),
            step_duration_label=label,
        )

    def fingerprint(self) -> str:
        """Names the grid and everything a run depends on: a results folder keeps one."""
        text = json.dumps({"cells": [c.to_json() for c in self.cells()],
                           "repetitions": self.repetitions, "seed": self.seed,
                           "mix": [vars(k) for k in self.preemption.mix],
                           "seconds_per_hour": self.preemption.seconds_per_hour},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def worker_counts(self) -> list[int]:
        return sorted({cell.workers for cell in self.cells()})


def _slug(name: str, value: Any) -> str:
    if value is None:
        return "all" if name == "max_task_replicas" else "none"
    if isinstance(value, Duration):
        return f"{value.mean():g}s"
    return str(value).replace(" ", "").replace("/", "_")
