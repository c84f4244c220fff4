"""The study report: `index.html` in the study folder, one self-contained page.

It shows the recommendation in plain words, makespan, goodput and failure probability
against the rate per setting (simulated, with the real runs' means), the Pareto front of
makespan against memory with the recommended point, the step-length advice, the
simulator's parity plot, what the real runs could not exercise, and any exactly-once
violation, loudly, at the top.
"""

from __future__ import annotations

import base64
import io
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from matplotlib.figure import Figure

from experiments.calibration import Calibration
from experiments.closed_forms import daly_step, young_step
from experiments.preemption import graceful_cap, harness_kind
from experiments.report_figures import (
    pareto_figure,
    parity_figure,
    rate_figure,
    step_advice_figure,
)
from experiments.report_template import STUDY_TEMPLATE
from experiments.simulation import CellPrediction
from experiments.study import Study
from experiments.units import format_bytes, format_seconds

REPORT_FILE = "index.html"
# What breaks exactly-once delivery, or what the settings promise; "hung" is a run past
# its time bound, which the checker flags too but the page names apart.
_EXACTLY_ONCE = ("lost", "duplicated", "unexpected", "corrupted", "reported-failed")
_ENVIRONMENT = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                  trim_blocks=True, lstrip_blocks=True)


def write_study_report(study: Study, folder: Path, *, rows: Sequence[Mapping[str, str]],
                       predictions: Sequence[CellPrediction],
                       harness: Sequence[CellPrediction], validation: Mapping[str, Any] | None,
                       recommendation: Mapping[str, Any], calibration: Calibration) -> Path:
    swept = [name for name, _ in study.axes]
    scale = 1.0 / study.preemption.seconds_per_hour  # real seconds -> model hours
    measured: dict[str, list[dict[str, float]]] = defaultdict(list)
    for row in rows:
        measured[row["cell"]].append({
            "makespan": float(row["makespan"]), "goodput": float(row["goodput"]),
            "failure": int(row["failed"]) / max(1, int(row["tasks"]))})
    chosen = {entry["preemption_rate"]: entry["cell"]
              for entry in recommendation["recommendations"]}
    figures = [
        _figure("makespan", "Makespan against the preemption rate",
                "Lines: the simulator (model mode: the study's preemption model), the shaded "
                "band its 95% interval of the mean. Crosses: the real runs' mean, with its "
                "standard error; they live in the harness's world (workers given notice are "
                "not replaced mid-run, the harness's own restart times, a shared machine), so "
                "the validation section, not this figure, compares like with like.",
                rate_figure(predictions, swept, measured, metric="makespan",
                            ylabel="makespan (model hours)", title="expected makespan",
                            scale=scale)),
        _figure("goodput", "Goodput against the preemption rate",
                "Useful compute seconds / (workers x makespan).",
                rate_figure(predictions, swept, measured, metric="goodput", ylabel="goodput",
                            title="goodput")),
        _figure("failure", "Failure probability",
                "P(a task is reported failed), simulated (lines) and measured (crosses).",
                rate_figure(predictions, swept, measured, metric="failure",
                            ylabel="P(task reported failed)", title="failure probability")),
        _figure("pareto", "Makespan against memory",
                "Each point a setting; the dashed line the Pareto front; the ring the "
                "recommendation. Red triangles may lose tasks.",
                pareto_figure(predictions, swept, chosen, scale)),
    ]
    step_rows, checkpoint, real_checkpoint = _step_advice(study, predictions, calibration,
                                                          figures)
    if validation is not None and validation["cells"]:
        figures.append(_figure("parity", "Simulator against measurement (parity)",
                               "Each point a measured cell; on the dashed line the simulator "
                               "is exact.", parity_figure(validation)))
    violation_rows = [row for row in rows if int(row["violations"]) > 0]
    broken = [row for row in violation_rows
              if any(f"{kind}=" in row["violation_kinds"] for kind in _EXACTLY_ONCE)]
    entries = [_entry_view(entry) for entry in recommendation["recommendations"]]
    context = {
        "study": study, "runs": len(rows), "cells": len(study.cells()),
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "violations": len(broken), "violation_rows": violation_rows,
        "hung": sum(row["run_status"] in ("hung", "cut-short") for row in rows),
        "validation": validation,
        "extrapolated_from": recommendation["simulator"].get("extrapolated_from"),
        "recommendation": {**recommendation, "recommendations": entries},
        "figures": figures, "step_rows": step_rows, "step_checkpoint": checkpoint,
        "real_checkpoint": real_checkpoint, "limits": _limits(study, calibration),
        "calibration": calibration,
        "constants": [(name, value, calibration.samples.get(name, 0))
                      for name, value in calibration.constants.items()]
        + [("steal_after (fitted)", calibration.steal_after, len(rows))],
        "command": f"python -m experiments run {study.name}"
                   + (" --quick" if study.quick else "") + f" --out {folder}",
        "folder": str(folder),
    }
    page = _ENVIRONMENT.from_string(STUDY_TEMPLATE).render(**context)
    path = folder / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path


def _figure(anchor: str, title: str, caption: str, figure: Figure) -> dict[str, str]:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"id": anchor, "title": title, "caption": caption, "uri": uri}


def _entry_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    overhead = entry.get("makespan_overhead")
    ci = entry.get("makespan_overhead_ci")
    text = "—" if overhead is None else f"{overhead:+.0%}"
    if ci:
        text += f" ({ci[0]:+.0%} to {ci[1]:+.0%})"
    settings = ", ".join(f"{k}={v!r}" for k, v in entry["settings"].items())
    return {**entry, "settings_text": settings, "overhead_text": text,
            "memory_text": format_bytes(entry["memory_bytes_per_worker"])}


def _step_advice(study: Study, predictions: Sequence[CellPrediction],
                 calibration: Calibration, figures: list[dict[str, str]]
                 ) -> tuple[list[dict[str, str]], float, float]:
    """Young/Daly in the study's world (compressed costs) and in a real cluster."""
    compression = study.preemption.compression
    sample = study.cells()[0]
    costs = calibration.costs_for(sample)
    real_checkpoint = (costs.placement + costs.dispatch + costs.return_latency
                       + costs.exec_overhead)
    checkpoint = real_checkpoint / compression
    downtime = dict(study.simulation.replacement)["sudden"]
    work = sample.step_duration.mean() * sample.steps / compression
    measured_steps: dict[float, list[tuple[int, float]]] = defaultdict(list)
    if any(name == "steps" for name, _ in study.axes):
        for p in predictions:
            per_chain = p.makespan_mean * p.cell.workers / p.cell.tasks / compression / 3600
            measured_steps[p.cell.rate].append((p.cell.steps, per_chain))
    rates = [r for r in study.preemption.rates if r > 0]
    if not rates:
        return [], checkpoint, real_checkpoint
    figures.append(_figure(
        "steps", "Step-length advice",
        "Closed form k(1/λ + D)(e^{λ(W/k + δ)} - 1) per rate, in the study's model time; "
        "Young's and Daly's optimum marked; where the study swept the step count, the "
        "simulator's time per chain.",
        step_advice_figure(rates, work, downtime, checkpoint, measured_steps)))
    rows = []
    for rate in rates:
        per_second = rate / 3600.0
        rows.append({"rate": f"{rate:g}",
                     "young": format_seconds(young_step(checkpoint, per_second)),
                     "daly": format_seconds(daly_step(checkpoint, per_second)),
                     "young_real": format_seconds(young_step(real_checkpoint, per_second)),
                     "daly_real": format_seconds(daly_step(real_checkpoint, per_second))})
    return rows, checkpoint, real_checkpoint


def _limits(study: Study, calibration: Calibration) -> list[str]:
    items = []
    if study.mode == "real":
        for share in study.preemption.mix:
            mapped = harness_kind(share)
            items.append(f"{share.label} ({share.weight:.0%} of preemptions) was inflicted as "
                         f"harness kind '{mapped.kind}': {mapped.note}.")
            if not mapped.replaced_mid_run:
                items.append(f"'{mapped.kind}' removes a worker for the rest of the run, so the "
                             f"real runs fired it at most "
                             f"{graceful_cap(study.cells()[0].workers)} time(s) per run; the "
                             "simulator mirrors this cap when it is validated, not when it "
                             "recommends.")
        items.append(
            f"Time is compressed: {study.preemption.seconds_per_hour:g} real seconds stand for "
            "one hour, but the harness's own latencies are not compressed: a SIGKILLed "
            f"worker came back after {calibration.constants['restart']:.2f} s real "
            f"(= {calibration.constants['restart'] / study.preemption.compression / 60:.0f} "
            "model minutes). The recommendation uses the study's replacement delay instead "
            f"({', '.join(f'{k}: {format_seconds(v)}' for k, v in study.simulation.replacement)}).")
        items.append("Sudden kills SIGKILL one worker process on one host; a whole-host loss "
                     "(several workers, the network), the scheduler or the client dying are "
                     "not part of these studies.")
    else:
        items.append(f"Nothing here ran for real: a simulation of {study.cells()[0].workers} "
                     f"workers and {study.cells()[0].tasks} tasks, with the library's costs "
                     f"calibrated in {calibration.source}. That is an extrapolation far beyond "
                     "the validated range (a few workers and tens of tasks): it rests on the "
                     "model's mechanisms holding at scale (per-input placement cost, Dask "
                     "rescheduling, at most max_in_flight steps in flight), not on measurement.")
        items.append("The cloud's side is assumed, not measured: replacement after "
                     + ", ".join(f"{k}: {format_seconds(v)}"
                                 for k, v in study.simulation.replacement) + ".")
    return items
