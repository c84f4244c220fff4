"""The study report's matplotlib figures. Each takes plain data and returns a Figure.

Built on `Figure` directly (never pyplot): no GUI backend and no global state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from experiments.closed_forms import daly_step, expected_time_steps, young_step
from experiments.simulation import CellPrediction

_MARKERS = "osD^vP*Xh<>p"


def _series_label(prediction: CellPrediction, swept: Sequence[str]) -> str:
    cell = prediction.cell
    parts = []
    for name in swept:
        if name == "max_task_replicas":
            value = cell.settings[name]
            parts.append(f"r={'all' if value is None else value}")
        elif name == "task_registry":
            parts.append(f"reg={cell.settings[name] or 'none'}")
        elif name in cell.settings:
            parts.append(f"{name}={cell.settings[name]}")
        else:
            parts.append(f"{name}={getattr(cell, name, '?')}" if name != "step_duration"
                         else f"d={cell.step_duration_label}")
    return " ".join(parts) or "study"


def by_setting(predictions: Sequence[CellPrediction], swept: Sequence[str]
               ) -> dict[str, list[CellPrediction]]:
    groups: dict[str, list[CellPrediction]] = defaultdict(list)
    for prediction in predictions:
        groups[_series_label(prediction, swept)].append(prediction)
    for items in groups.values():
        items.sort(key=lambda p: p.cell.rate)
    return dict(groups)


def rate_figure(predictions: Sequence[CellPrediction], swept: Sequence[str],
                measured: Mapping[str, Sequence[Mapping[str, float]]], *, metric: str,
                ylabel: str, title: str, scale: float = 1.0) -> Figure:
    """`metric` (makespan, goodput or failure) against the rate, one line per setting.

    Lines are the simulator (95% interval of the mean shaded, for makespan); markers
    are the real runs' means with their standard errors.
    """
    figure = Figure(figsize=(10, 4.6), layout="constrained")
    axes = figure.add_subplot()
    for number, (label, items) in enumerate(by_setting(predictions, swept).items()):
        rates = [p.cell.rate for p in items]
        if metric == "makespan":
            values = [p.makespan_mean * scale for p in items]
            low = [p.makespan_ci[0] * scale for p in items]
            high = [p.makespan_ci[1] * scale for p in items]
            axes.fill_between(rates, low, high, alpha=0.15)
        elif metric == "goodput":
            values = [p.goodput for p in items]
        else:
            values = [p.failure_probability for p in items]
        line = axes.plot(rates, values, marker=_MARKERS[number % len(_MARKERS)],
                         markersize=4, linewidth=1.2, label=label)[0]
        points = [(p.cell.rate, measured.get(p.cell.id, ())) for p in items]
        xs, ys, errs = [], [], []
        for rate, runs in points:
            if runs:
                series = np.array([run[metric] for run in runs]) * (
                    scale if metric == "makespan" else 1.0)
                xs.append(rate)
                ys.append(series.mean())
                errs.append(series.std(ddof=1) / np.sqrt(len(series)) if len(series) > 1 else 0)
        if xs:
            axes.errorbar(xs, ys, yerr=errs, fmt="none", ecolor=line.get_color(), capsize=3)
            axes.scatter(xs, ys, color=line.get_color(), marker="x", s=30)
    axes.set_xlabel("preemptions per worker-hour")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if metric == "failure":
        axes.set_yscale("symlog", linthresh=1e-3)
    axes.legend(fontsize=7, ncol=2, loc="best")
    return figure


def pareto_figure(predictions: Sequence[CellPrediction], swept: Sequence[str],
                  chosen: Mapping[float, str], scale: float) -> Figure:
    """Makespan against memory per worker, one panel per rate; the front joined, the
    recommended point ringed."""
    rates = sorted({p.cell.rate for p in predictions})
    figure = Figure(figsize=(3.3 * len(rates), 3.6), layout="constrained")
    for position, rate in enumerate(rates):
        axes = figure.add_subplot(1, len(rates), position + 1)
        items = [p for p in predictions if p.cell.rate == rate]
        xs = np.array([p.memory_bytes_per_worker / 1e6 for p in items])
        ys = np.array([p.makespan_mean * scale for p in items])
        failing = np.array([p.failure_probability > 0 for p in items])
        axes.scatter(xs[~failing], ys[~failing], s=18, color="#2e7d32", label="loses no task")
        axes.scatter(xs[failing], ys[failing], s=18, color="#c62828", marker="^",
                     label="may lose tasks")
        front = sorted(zip(xs, ys, strict=True))
        best, line = np.inf, []
        for x, y in front:
            if y < best:
                best = y
                line.append((x, y))
        if line:
            axes.plot(*zip(*line, strict=True), color="#555", linewidth=1, linestyle="--")
        for p, x, y in zip(items, xs, ys, strict=True):
            if chosen.get(rate) == p.cell.id:
                axes.scatter([x], [y], s=160, facecolors="none", edgecolors="#1565c0",
                             linewidths=2, label="recommended")
                axes.annotate(_series_label(p, swept), (x, y), fontsize=7,
                              xytext=(4, 6), textcoords="offset points")
        axes.set_title(f"{rate:g} / worker-hour", fontsize=10)
        axes.set_xlabel("MB of step inputs per worker")
        if position == 0:
            axes.set_ylabel("expected makespan (model h)" if scale != 1 else "makespan (s)")
            axes.legend(fontsize=7)
        axes.grid(alpha=0.3)
    return figure


def step_advice_figure(rates: Sequence[float], work: float, downtime: float, checkpoint: float,
                       measured_steps: Mapping[float, Sequence[tuple[int, float]]]) -> Figure:
    """E[T] of a chain of `work` model seconds split into k steps (closed form), per rate,
    with Young's and Daly's optimum marked, and the simulator's points where k was swept."""
    figure = Figure(figsize=(10, 4.4), layout="constrained")
    axes = figure.add_subplot()
    ks = np.unique(np.round(np.logspace(0, 7, 120, base=2)).astype(int))
    for number, rate in enumerate(r for r in rates if r > 0):
        per_second = rate / 3600.0
        values = [expected_time_steps(work, int(k), per_second, downtime, checkpoint) / 3600
                  for k in ks]
        line = axes.plot(ks, values, linewidth=1.3, label=f"{rate:g} / worker-hour")[0]
        young = work / young_step(checkpoint, per_second)
        daly = work / daly_step(checkpoint, per_second)
        for k_opt, marker in ((young, "v"), (daly, "o")):
            axes.scatter([k_opt], [expected_time_steps(work, max(1, round(k_opt)), per_second,
                                                       downtime, checkpoint) / 3600],
                         color=line.get_color(), marker=marker, s=40, zorder=3)
        points = measured_steps.get(rate, ())
        if points:
            axes.scatter([k for k, _ in points], [t for _, t in points], color=line.get_color(),
                         marker="x", s=40, zorder=3)
        del number
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("steps k the chain is split into")
    axes.set_ylabel("expected time per chain (model h)")
    axes.set_title(f"Splitting a {work / 3600:.2g} h chain: checkpoint cost δ = "
                   f"{checkpoint:.0f} s, downtime D = {downtime:.0f} s (model time); "
                   "v Young, o Daly, x simulator")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8)
    return figure


def parity_figure(validation: Mapping[str, Any]) -> Figure:
    """Predicted against measured: mean makespan, and failure probability, per cell."""
    figure = Figure(figsize=(10, 4.4), layout="constrained")
    for position, (key, label) in enumerate((("makespan", "mean makespan (real s)"),
                                             ("failure_probability", "P(task failed)"))):
        axes = figure.add_subplot(1, 2, position + 1)
        measured = [cell[key]["measured"] for cell in validation["cells"]]
        predicted = [cell[key]["predicted"] for cell in validation["cells"]]
        rates = [cell["preemption_rate"] for cell in validation["cells"]]
        points = axes.scatter(measured, predicted, c=rates, cmap="viridis", s=22)
        top = max([*measured, *predicted, 1e-9]) * 1.08
        axes.plot([0, top], [0, top], color="#555", linestyle="--", linewidth=1)
        if key == "makespan":
            band = validation["max_median_relative_error"]
            axes.fill_between([0, top], [0, top * (1 - band)], [0, top * (1 + band)],
                              color="#90caf9", alpha=0.25, label=f"±{band:.0%}")
            axes.legend(fontsize=8)
        axes.set_xlim(0, top)
        axes.set_ylim(0, top)
        axes.set_xlabel(f"measured {label}")
        axes.set_ylabel(f"simulated {label}")
        axes.grid(alpha=0.3)
        if position == 1:
            figure.colorbar(points, ax=axes, label="preemptions per worker-hour")
    return figure
