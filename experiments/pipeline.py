"""A study from end to end, in the one direction of the design:

    real runs -> results.csv -> calibration -> validation -> predictions -> recommendation
    -> report

`finish_study` does everything after the runs, from the study folder alone (so
`python -m experiments report DIR` redoes it); a simulation-only study borrows the
calibration of a validated real study instead of measuring one.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos import read_history
from experiments.calibration import Calibration, MeasuredRun, calibrate
from experiments.errors import CalibrationError, ResultsError
from experiments.recommend import MeasuredCell, recommend, write_recommendation
from experiments.results import read_results
from experiments.runner import STUDY_FILE
from experiments.simulation import (
    VALIDATION_FILE,
    CellPrediction,
    fit_steal,
    harness_predictions,
    predict,
    summarise,
    validate,
    write_simulation,
)
from experiments.study import Study
from experiments.study_file import parse_study
from experiments.workload import workload_for

DEFAULT_ROOT = Path("build/studies")


@dataclass(frozen=True)
class StudyOutcome:
    folder: Path
    report: Path
    recommendation: dict[str, Any]
    validation: dict[str, Any] | None
    violations: int  # runs that broke exactly-once delivery or their settings' promise
    hung: int  # runs past their time bound
    seconds: float


def default_out(study: Study) -> Path:
    return DEFAULT_ROOT / f"{study.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def study_from_folder(folder: Path) -> Study:
    """The study a folder was run for, rebuilt from its study.json."""
    path = folder / STUDY_FILE
    if not path.is_file():
        raise ResultsError(f"{folder} has no {STUDY_FILE}: it is not a study folder (pass "
                           "the --out folder of `python -m experiments run`).")
    record = json.loads(path.read_text(encoding="utf-8"))
    return parse_study(record["raw"], source=record["source"], quick=record["quick"])


def measured_runs(study: Study, folder: Path) -> list[MeasuredRun]:
    """Every run in results.csv with its history (runs whose history is gone are skipped)."""
    cells = {cell.id: cell for cell in study.cells()}
    runs = []
    for row in read_results(folder / "results.csv"):
        cell = cells.get(row["cell"])
        history_dir = Path(row["run_dir"])
        if cell is None or not (history_dir / "history.jsonl").is_file():
            continue
        seed = int(row["seed"])
        workload = workload_for(cell, seed)
        runs.append(MeasuredRun(cell, seed, read_history(history_dir), workload.duration_of))
    return runs


def finish_study(study: Study, folder: Path, *, calibration_folder: Path | None = None
                 ) -> StudyOutcome:
    """Calibrate, validate, predict, recommend and report, from the folder's contents."""
    from experiments.report import write_study_report

    began = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    rows = read_results(folder / "results.csv")
    validation: dict[str, Any] | None = None
    harness: list[CellPrediction] = []
    if study.mode == "real":
        runs = measured_runs(study, folder)
        calibration = fit_steal(study, calibrate(runs, str(folder)), runs)
        calibration.save(folder)
        outcomes = harness_predictions(study, calibration, runs)
        validation = validate(study, runs, outcomes, folder)
        harness = summarise(study, outcomes, "harness")
        source = None
    else:
        calibration, validation_source = borrowed_calibration(study, calibration_folder)
        source = validation_source
    predictions = predict(study, calibration, "model")
    write_simulation([*predictions, *harness], folder)
    measured = _measured_cells(rows)
    content = recommend(study, predictions, measured,
                        validated=None if validation is None else validation["validated"],
                        extrapolated_from=source)
    write_recommendation(content, folder)
    report = write_study_report(study, folder, rows=rows, predictions=predictions,
                                harness=harness, validation=validation,
                                recommendation=content, calibration=calibration)
    hung = sum(row["verdict"] == "hung" for row in rows)
    violations = sum(int(row["violations"]) > 0 and row["verdict"] != "hung" for row in rows)
    return StudyOutcome(folder, report, content, validation, violations, hung,
                        time.monotonic() - began)


def borrowed_calibration(study: Study, folder: Path | None) -> tuple[Calibration, str]:
    """The calibration of the newest validated folder of `study.calibration_from`."""
    name = study.calibration_from
    candidates = [folder] if folder is not None else sorted(
        DEFAULT_ROOT.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for candidate in candidates:
        path = candidate / VALIDATION_FILE
        if not path.is_file():
            continue
        validation = json.loads(path.read_text(encoding="utf-8"))
        if not validation.get("validated"):
            if folder is not None:
                raise CalibrationError(
                    f"{candidate}: its simulator was not validated (median relative error "
                    f"{validation.get('median_relative_error'):.2f} > "
                    f"{validation.get('max_median_relative_error')}); a study that "
                    "extrapolates needs a validated one. Rerun that study with more "
                    "repetitions, or pass another --calibration DIR.")
            continue
        return Calibration.load(candidate), (
            f"{candidate} (median relative error {validation['median_relative_error']:.3f})")
    raise CalibrationError(
        f"no validated run of {name!r} under {DEFAULT_ROOT}/ to calibrate {study.name!r} from; "
        f"run `python -m experiments run {name} --quick` first, or pass --calibration DIR.")


def _measured_cells(rows: list[dict[str, str]]) -> dict[str, MeasuredCell]:
    grouped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        grouped[row["cell"]].append(row)
    return {cell: MeasuredCell(
        runs=len(items), failed_tasks=sum(int(r["failed"]) for r in items),
        violations=sum(int(r["violations"]) for r in items),
        makespan_mean=sum(float(r["makespan"]) for r in items) / len(items))
        for cell, items in grouped.items()}
