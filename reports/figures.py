"""matplotlib figures of a campaign. Each function takes tables and returns a Figure.

Figures grow with what they show (lanes, configurations) so they read the same with 3
configurations or 36; the caller renders and closes them (`reports.html.png_data_uri`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

# Figures are built on `Figure` directly, never pyplot: no GUI backend, no global state,
# and saving to PNG renders through Agg.
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from chaos.analysis import ecdf

OUTCOME_STYLE: dict[str, dict[str, Any]] = {
    "used": {"color": "#2e7d32", "label": "ok, result used"},
    "unused": {"color": "#a5d6a7", "hatch": "///", "label": "ok, result not used"},
    "fail": {"color": "#c62828", "label": "protocol raised"},
    "info": {"color": "#ef6c00", "label": "cut short: outcome unknown"},
    "unfinished": {"color": "#9e9e9e", "label": "no outcome"},
}
FAULT_COLORS = {
    "sigkill": "#b71c1c", "exit": "#880e4f", "segfault": "#4a148c", "nanny-close": "#0d47a1",
    "freeze": "#00838f", "retire": "#558b2f", "preempt": "#e65100", "scheduler-kill": "#000000",
}
_OTHER_FAULT = "#424242"
CLIENT_MARKERS: dict[str, dict[str, Any]] = {
    "delivery": {"marker": "D", "size": 22, "color": "#1565c0", "lane": 0.0,
                 "label": "delivery"},
    "bad delivery": {"marker": "D", "size": 40, "color": "#d50000", "lane": 0.0,
                     "label": "delivery with a violation"},
    "resubmission": {"marker": "^", "size": 26, "color": "#6a1b9a", "lane": 0.22,
                     "label": "resubmission"},
    "reported failed": {"marker": "x", "size": 40, "color": "#c62828", "lane": -0.22,
                        "label": "reported failed"},
}
_NO_CLIENT_EVENTS = pd.DataFrame({"type": [], "time": []})
_NO_HOLDS = pd.DataFrame({"worker": [], "start": [], "end": []})
HOLD_COLOR = "#455a64"
_LINE_STYLES = ["-", "--", "-.", ":"]
_MAX_CDF_GROUPS = 8


def timeline_figure(
    executions: pd.DataFrame,
    faults: pd.DataFrame,
    deliveries: pd.DataFrame,
    *,
    client_events: pd.DataFrame | None = None,
    flagged_deliveries: Collection[int] = (),
    run_end: tuple[float, str] | None = None,
    holds: pd.DataFrame | None = None,
    title: str = "",
) -> Figure:
    """Gantt of one run: a lane per worker, a bar per execution coloured by outcome.

    Faults are a cross where they landed, shaded until the scheduler noticed, coloured
    by kind. The top lane is the client: deliveries (diamonds; red when their `seq` is in
    `flagged_deliveries`), resubmissions (triangles) and tasks reported failed (crosses).
    `run_end` (seconds, status) draws where the run ended; None means it was cut short.
    `holds` (`reports.tables.hold_table`) underlines the time a probe held a task for a
    fault that never came.
    """
    client_events = client_events if client_events is not None else _NO_CLIENT_EVENTS
    workers = _lane_order(executions, faults)
    lanes = {worker: position + 1 for position, worker in enumerate(workers)}
    figure = Figure(figsize=(11, 2.1 + 0.45 * (len(lanes) + 1)), layout="constrained")
    axes = figure.add_subplot()
    for _, row in executions.iterrows():
        style = OUTCOME_STYLE[_bar_style(row)]
        axes.barh(
            lanes[row["worker"]], max(row["end"] - row["start"], 1e-4), left=row["start"],
            height=0.6, color=style["color"], hatch=style.get("hatch"),
            edgecolor="white", linewidth=0.6,
        )
    span = max(_span(executions, faults, deliveries), run_end[0] if run_end else 0.0)
    _label_bars(axes, executions, lanes, span)
    for _, fault in faults.iterrows():
        lane = lanes.get(fault["worker"], 0)
        color = FAULT_COLORS.get(fault["kind"], _OTHER_FAULT)
        until = fault["noticed"] if np.isfinite(fault["noticed"]) else span
        axes.axvspan(fault["landed"], until, ymin=0, ymax=1, color=color, alpha=0.08)
        axes.fill_between([fault["landed"], until], lane - 0.45, lane + 0.45, color=color,
                          alpha=0.25, linewidth=0)
        axes.plot([fault["landed"]], [lane], marker="X", markersize=11, color=color,
                  markeredgecolor="white", zorder=5)
    holds = holds if holds is not None else _NO_HOLDS
    for _, hold in holds[holds["worker"].isin(list(lanes))].iterrows():
        axes.plot([hold["start"], hold["end"]], [lanes[hold["worker"]] + 0.38] * 2,
                  color=HOLD_COLOR, linewidth=3, solid_capstyle="butt", zorder=3)
    for name, rows in _client_markers(deliveries, client_events, flagged_deliveries).items():
        style = CLIENT_MARKERS[name]
        axes.scatter(rows["time"], [style["lane"]] * len(rows), marker=style["marker"],
                     s=style["size"], color=style["color"], zorder=4)
    end_at, end_text, end_color = (
        (run_end[0], f"run-end: {run_end[1]} ", "#37474f") if run_end is not None
        else (span, "history stops: cut short ", "#e65100")
    )
    axes.axvline(end_at, color=end_color, linestyle="--" if run_end else ":", linewidth=1.4)
    axes.text(end_at, -0.58, end_text, fontsize=8, color=end_color, va="top", ha="right",
              bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
              in_layout=False)
    axes.set_yticks(range(len(lanes) + 1), ["client", *_lane_names(executions, workers)])
    axes.set_ylim(len(lanes) + 0.6, -0.6)
    axes.set_xlim(0, span * 1.02)
    axes.set_xlabel("seconds since run start")
    axes.grid(axis="x", alpha=0.3)
    axes.set_title(title, loc="left", fontsize=10)
    markers = _client_markers(deliveries, client_events, flagged_deliveries)
    handles = _timeline_legend(executions, faults, markers)
    if len(holds):
        handles.append(Line2D([], [], color=HOLD_COLOR, linewidth=3,
                              label="probe held for a fault that never came"))
    figure.legend(handles=handles,
                  loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    return figure


def recovery_cdf_figure(
    recoveries: pd.DataFrame, group_by: str = "label", facet_by: str | None = None
) -> Figure:
    """CDFs of seconds from a kill landing to resubmission, re-execution and delivery.

    One curve per group, in three panels; with `facet_by`, one row of panels per facet
    value (a group keeps its colour across rows). A curve stops below 1 by the share
    that never got there; a group that never did lies flat on 0.
    """
    panels = [("to_resubmit", "kill → resubmission"), ("to_reexecute", "kill → re-execution"),
              ("to_deliver", "kill → delivery")]
    groups = list(dict.fromkeys(recoveries[group_by]))
    styles = dict(zip(groups, _group_colors(len(groups)), strict=True))
    facets: list[Any] = [None] if facet_by is None else list(dict.fromkeys(recoveries[facet_by]))
    legend_rows = -(-len(groups) // 2)
    figure = Figure(figsize=(12, 1.0 + 2.8 * len(facets) + 0.2 * legend_rows),
                    layout="constrained")
    axes = figure.subplots(len(facets), len(panels), sharey=True, sharex="col", squeeze=False)
    for row, facet in enumerate(facets):
        subset = recoveries if facet is None else recoveries[recoveries[facet_by] == facet]
        for axis, (column, title) in zip(axes[row], panels, strict=True):
            x_end = float(recoveries[column].max()) if recoveries[column].notna().any() else 1.0
            for group in dict.fromkeys(subset[group_by]):
                x, y = ecdf(subset.loc[subset[group_by] == group, column])
                color, linestyle = styles[group]
                axis.step(np.concatenate([[0], x, [x_end]]),
                          np.concatenate([[0], y, y[-1:] if y.size else [0]]),
                          where="post", color=color, linestyle=linestyle, linewidth=1.6)
            if not subset[column].notna().any():
                axis.text(0.5, 0.5, "none in these runs", transform=axis.transAxes,
                          ha="center", va="center", fontsize=9, color="#777")
            axis.set_title(title if facet is None else f"{facet}: {title}", fontsize=10)
            axis.set_ylim(-0.03, 1.03)
            axis.grid(alpha=0.3)
        axes[row][0].set_ylabel("share of disturbed steps")
    for axis in axes[-1]:
        axis.set_xlabel("seconds")
    handles = [
        Line2D([], [], color=styles[group][0], linestyle=styles[group][1], linewidth=1.6,
               label=_group_legend(recoveries, group_by, group) if facet_by is None else group)
        for group in groups
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=2 if facet_by is None else 3,
                  fontsize=8, frameon=False)
    return figure


def wasted_work_figure(runs: pd.DataFrame, order: Sequence[str]) -> Figure:
    """Per configuration, the mean CPU-seconds per run of executions whose result was not
    used, with each run as a dot, and the share of all execution time it was.
    """
    figure, axes = _per_configuration_axes(order, "wasted CPU-seconds per run")
    positions = {label: i for i, label in enumerate(order)}
    summary = runs.groupby("label")[["wasted_seconds", "busy_seconds"]].sum()
    means = runs.groupby("label")["wasted_seconds"].mean()
    axes.barh([positions[label] for label in means.index], means.to_numpy(), height=0.6,
              color="#ef9a9a")
    axes.scatter(runs["wasted_seconds"], runs["label"].map(positions), s=9,
                 color="#b71c1c", zorder=3)
    right = max(float(runs["wasted_seconds"].max() or 0), 1e-3)
    for label, row in summary.iterrows():
        share = row["wasted_seconds"] / row["busy_seconds"] if row["busy_seconds"] else 0.0
        axes.text(right * 1.02, positions[label], f"{share:.0%} of work", va="center",
                  fontsize=8, color="#555")
    axes.set_xlim(0, right * 1.18)
    return figure


def overhead_figure(overhead: pd.DataFrame, order: Sequence[str]) -> Figure:
    """Forest plot: makespan overhead against fault-free runs, with its interval.

    The axis fits the point estimates, not the intervals: one wide interval from a few
    noisy runs would squash every other row. A clipped interval ends in an arrow.
    """
    figure, axes = _per_configuration_axes(order, "makespan overhead vs fault-free runs")
    positions = {label: i for i, label in enumerate(order)}
    rows = [row for _, row in overhead.iterrows() if row["label"] in positions]
    points = [100 * row["overhead"] for row in rows if np.isfinite(row["overhead"])]
    low, high = _overhead_limits(points)
    axes.axvline(0, color="#555", linewidth=1)
    for row in rows:
        y = positions[row["label"]]
        if not np.isfinite(row["overhead"]):
            axes.text(0.01, y, row["method"], va="center", fontsize=8, color="#777",
                      transform=axes.get_yaxis_transform())
            continue
        if np.isfinite(row["low"]):
            start, end = max(100 * row["low"], low), min(100 * row["high"], high)
            axes.plot([start, end], [y, y], color="#1565c0", linewidth=2)
            for clipped, edge, marker in ((start > 100 * row["low"], start, "<"),
                                          (end < 100 * row["high"], end, ">")):
                if clipped:
                    axes.plot([edge], [y], marker=marker, color="#1565c0", markersize=6)
        axes.plot([100 * row["overhead"]], [y], marker="o", color="#0d47a1")
    axes.set_xlim(low, high)
    axes.xaxis.set_major_formatter(PercentFormatter(decimals=0))
    return figure


def cdf_grouping(runs: pd.DataFrame) -> tuple[str, str | None]:
    """How to group recovery CDFs: by configuration when there are few; else by how a
    configuration protects its inputs, in one row of panels per target.
    """
    if runs["label"].nunique() <= _MAX_CDF_GROUPS:
        return "label", None
    return "protection", "target"


def with_cdf_groups(recoveries: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """`recoveries` with the `target` and `protection` of each row's configuration."""
    per_label = runs.drop_duplicates("label").set_index("label")
    protection = {label: _protection(row) for label, row in per_label.iterrows()}
    return recoveries.assign(
        target=recoveries["label"].map(per_label["target"]),
        protection=recoveries["label"].map(protection),
    )


# ---------------------------------------------------------------------------- internals


def _per_configuration_axes(order: Sequence[str], xlabel: str) -> tuple[Figure, Any]:
    figure = Figure(figsize=(10, 0.9 + 0.26 * len(order)), layout="constrained")
    axes = figure.add_subplot()
    axes.set_yticks(range(len(order)), list(order), fontsize=8)
    axes.set_ylim(len(order) - 0.5, -0.5)
    axes.set_xlabel(xlabel)
    axes.grid(axis="x", alpha=0.3)
    for stripe in range(1, len(order), 2):
        axes.axhspan(stripe - 0.5, stripe + 0.5, color="#f3f3f3", zorder=0)
    return figure, axes


def _group_colors(count: int) -> list[tuple[Any, str]]:
    # tab10's distinct hues first, then the same hues dashed, dash-dotted, dotted.
    palette = matplotlib.colormaps["tab10"]
    return [(palette(i % 10), _LINE_STYLES[i // 10 % len(_LINE_STYLES)]) for i in range(count)]


def _protection(run: pd.Series) -> str:
    if run["registry"] != "none":
        return f"registry={run['registry']}"
    if not run["scatter"]:
        return "inline inputs"
    if run["replicas"] == "all" or int(run["replicas"]) >= 2:
        return f"replicas={run['replicas']}"
    return "no protection"


def _overhead_limits(points: Sequence[float]) -> tuple[float, float]:
    # Always show 0 (no overhead); pad by a third of the spread of the estimates.
    low, high = min([0.0, *points]), max([0.0, *points])
    pad = max((high - low) / 3, 10.0)
    return low - pad, high + pad


def _bar_style(row: pd.Series) -> str:
    if row["outcome"] == "ok":
        return "used" if row["used"] else "unused"
    return str(row["outcome"]) if row["outcome"] in OUTCOME_STYLE else "unfinished"


def _lane_order(executions: pd.DataFrame, faults: pd.DataFrame) -> list[str]:
    first_seen: dict[str, float] = {}
    for worker, start in zip(executions["worker"], executions["start"], strict=True):
        first_seen[worker] = min(first_seen.get(worker, np.inf), start)
    for worker, landed in zip(faults["worker"], faults["landed"], strict=True):
        first_seen[worker] = min(first_seen.get(worker, np.inf), landed)
    return sorted(first_seen, key=lambda worker: (first_seen[worker], str(worker)))


def _span(executions: pd.DataFrame, faults: pd.DataFrame, deliveries: pd.DataFrame) -> float:
    ends = [executions["end"].max(), faults["noticed"].max(), faults["landed"].max(),
            deliveries["time"].max()]
    finite = [float(value) for value in ends if pd.notna(value)]
    return max(finite, default=1.0) or 1.0


def _label_bars(
    axes: Any, executions: pd.DataFrame, lanes: Mapping[str, int], span: float
) -> None:
    # Only bars wide enough to hold their name are named; the rest stay clean.
    for _, row in executions.iterrows():
        width = row["end"] - row["start"]
        text = f"{row['task_id']}·s{row['step']}"
        if width < span * (0.006 + 0.0055 * len(text)):
            continue
        axes.text(row["start"] + width / 2, lanes[row["worker"]], text,
                  ha="center", va="center",
                  fontsize=6.5, color="white" if _bar_style(row) != "unused" else "#1b5e20",
                  clip_on=True)


def _client_markers(
    deliveries: pd.DataFrame, client_events: pd.DataFrame, flagged: Collection[int]
) -> dict[str, pd.DataFrame]:
    bad = deliveries["seq"].isin(list(flagged))
    markers = {
        "delivery": deliveries[~bad],
        "bad delivery": deliveries[bad],
        "resubmission": client_events[client_events["type"] == "resubmit"],
        "reported failed": client_events[client_events["type"] == "task-failed"],
    }
    return {name: rows for name, rows in markers.items() if len(rows)}


def _timeline_legend(
    executions: pd.DataFrame, faults: pd.DataFrame, markers: Mapping[str, pd.DataFrame]
) -> list[Any]:
    present = {_bar_style(row) for _, row in executions.iterrows()}
    handles: list[Any] = [
        Patch(facecolor=style["color"], hatch=style.get("hatch"), edgecolor="white",
              label=style["label"])
        for name, style in OUTCOME_STYLE.items() if name in present
    ]
    for kind in dict.fromkeys(faults["kind"]):
        handles.append(Line2D([], [], marker="X", linestyle="", markersize=9,
                              color=FAULT_COLORS.get(kind, _OTHER_FAULT),
                              label=f"{kind} (shaded until noticed)"))
    for name in markers:
        style = CLIENT_MARKERS[name]
        handles.append(Line2D([], [], marker=style["marker"], linestyle="",
                              color=style["color"], label=style["label"]))
    return handles


def _group_legend(recoveries: pd.DataFrame, group_by: str, group: str) -> str:
    rows = recoveries[recoveries[group_by] == group]
    never = int(rows["to_deliver"].isna().sum())
    return f"{group} (n={len(rows)}, never delivered {never})"


def _lane_names(executions: pd.DataFrame, workers: Sequence[str]) -> list[str]:
    """Worker names short enough for a lane: ':port' when all share one host, with pid."""
    hosts = {str(worker).rsplit(":", 1)[0] for worker in workers}
    pids = dict(zip(executions["worker"], executions["pid"], strict=True))
    names = []
    for worker in workers:
        name = ":" + str(worker).rsplit(":", 1)[-1] if len(hosts) == 1 else str(worker)
        pid = pids.get(worker)
        names.append(f"{name}\npid {pid}" if pid is not None and pd.notna(pid) else name)
    return names
