"""Step durations as a distribution, drawn deterministically per step instance.

A study writes a step duration as a constant ("10min") or a distribution
({dist = "lognormal", median = "10min", sigma = 0.5}). The real runs and the simulator
draw the very same duration for a given (seed, task, step, lineage index), so a
simulated run and a measured one do the same work.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from experiments.errors import StudyError
from experiments.units import format_seconds, seconds

Distribution = Literal["constant", "uniform", "lognormal", "exponential"]
_PARAMETERS: dict[str, tuple[str, ...]] = {
    "constant": ("seconds",),
    "uniform": ("low", "high"),
    "lognormal": ("median", "sigma"),
    "exponential": ("mean",),
}
_DIMENSIONLESS = {"sigma"}


@dataclass(frozen=True)
class Duration:
    """A step-duration distribution; its parameters are in seconds (sigma is unitless)."""

    dist: Distribution
    params: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        values = dict(self.params)
        if self.dist == "uniform" and values["low"] > values["high"]:
            raise StudyError(f"uniform step duration: low={values['low']:g} s > "
                             f"high={values['high']:g} s; swap them.")

    @classmethod
    def constant(cls, value: float) -> Duration:
        return cls("constant", (("seconds", float(value)),))

    @classmethod
    def parse(cls, value: Any, *, where: str) -> Duration:
        """From "10min", 30, or a table {dist = ..., <its parameters>}."""
        if not isinstance(value, Mapping):
            return cls.constant(seconds(value, where=where))
        dist = value.get("dist")
        if dist not in _PARAMETERS:
            raise StudyError(f"{where}.dist = {dist!r}: use one of {', '.join(_PARAMETERS)}.")
        wanted = _PARAMETERS[dist]
        if set(value) - {"dist"} != set(wanted):
            raise StudyError(f"{where}: a {dist} duration takes exactly "
                             f"{', '.join(wanted)}; got {sorted(set(value) - {'dist'})}.")
        params = []
        for name in wanted:
            raw = value[name]
            if name in _DIMENSIONLESS:
                if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0:
                    raise StudyError(f"{where}.{name} = {raw!r}: a number >= 0.")
                params.append((name, float(raw)))
            else:
                params.append((name, seconds(raw, where=f"{where}.{name}")))
        return cls(dist, tuple(params))

    def scaled(self, factor: float) -> Duration:
        """The same shape with every time multiplied by `factor` (time compression)."""
        return Duration(self.dist, tuple(
            (name, value if name in _DIMENSIONLESS else value * factor)
            for name, value in self.params))

    def mean(self) -> float:
        p = dict(self.params)
        if self.dist == "constant":
            return p["seconds"]
        if self.dist == "uniform":
            return (p["low"] + p["high"]) / 2
        if self.dist == "lognormal":
            return p["median"] * math.exp(p["sigma"] ** 2 / 2)
        return p["mean"]

    def draw(self, rng: random.Random) -> float:
        p = dict(self.params)
        if self.dist == "constant":
            return p["seconds"]
        if self.dist == "uniform":
            return rng.uniform(p["low"], p["high"])
        if self.dist == "lognormal":
            return p["median"] * math.exp(rng.gauss(0.0, p["sigma"]))
        return rng.expovariate(1.0 / p["mean"]) if p["mean"] > 0 else 0.0

    def label(self) -> str:
        p = dict(self.params)
        if self.dist == "constant":
            return format_seconds(p["seconds"])
        if self.dist == "uniform":
            return f"U({format_seconds(p['low'])}, {format_seconds(p['high'])})"
        if self.dist == "lognormal":
            return f"lognormal(median {format_seconds(p['median'])}, sigma={p['sigma']:g})"
        return f"exponential(mean {format_seconds(p['mean'])})"

    def to_json(self) -> dict[str, Any]:
        return {"dist": self.dist, **dict(self.params)}


def step_seconds(duration: Duration, seed: int, task_id: Any, step: int,
                 index: tuple[int, ...]) -> float:
    """The duration of one step instance: the same in a real run and in the simulator."""
    rng = random.Random(f"step-duration:{seed}:{task_id!r}:{step}:{list(index)}")
    return max(0.0, duration.draw(rng))
