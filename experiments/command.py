"""`python -m experiments list | run NAME [--out DIR] [--quick] | report DIR`.

`run` runs a study's real runs (or none, for a simulation-only study), then calibrates,
validates, simulates, recommends and writes the report; it prints the folder, the
recommendation and any exactly-once violation. Exit status: 0, or 1 when a run broke
exactly-once delivery or hung (the study still finished and reported it), or 2 on bad
input.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from experiments.errors import ExperimentError
from experiments.pipeline import StudyOutcome, default_out, finish_study, study_from_folder
from experiments.runner import record_study, run_study
from experiments.study import Study
from experiments.study_file import builtin_studies, load_study


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="the built-in studies")
    run = verbs.add_parser("run", help="run a study (a built-in name or a .toml path)")
    run.add_argument("study")
    run.add_argument("--out", type=Path, default=None,
                     help="study folder (default build/studies/<name>-<timestamp>/); the "
                          "same folder again continues an interrupted study")
    run.add_argument("--quick", action="store_true", help="the study's [quick] variant")
    run.add_argument("--calibration", type=Path, default=None,
                     help="a simulation-only study: the validated real study folder to "
                          "calibrate from (default: the newest under build/studies/)")
    report = verbs.add_parser("report", help="redo calibration, validation and report of DIR")
    report.add_argument("folder", type=Path)
    report.add_argument("--calibration", type=Path, default=None)
    arguments = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        if arguments.verb == "list":
            return _list()
        if arguments.verb == "run":
            return _run(arguments.study, arguments.out, arguments.quick, arguments.calibration,
                        console)
        study = study_from_folder(arguments.folder)
        return _finish(study, arguments.folder, arguments.calibration, console, time.monotonic())
    except ExperimentError as error:
        console.print(f"[bold red]error:[/] {error}")
        return 2


def _list() -> int:
    for name, path in sorted(builtin_studies().items()):
        study = load_study(path)
        print(f"{name:26} {study.mode:10} {len(study.cells()):4} cells x "
              f"{study.repetitions} repetitions  {study.description}")
    return 0


def _run(name: str, out: Path | None, quick: bool, calibration: Path | None,
         console: Console) -> int:
    began = time.monotonic()
    study = load_study(name, quick=quick)
    folder = out or default_out(study)
    console.print(f"study [bold]{study.name}[/]{' (quick)' if quick else ''}: "
                  f"{len(study.cells())} cells x {study.repetitions} repetitions -> {folder}")
    if study.mode != "real":
        record_study(study, folder)  # what `report DIR` rebuilds the study from
    else:
        summary = run_study(study, folder, console=console)
        console.print(f"{summary.ran} runs now, {summary.skipped} already done, "
                      f"{summary.hung} hung, {len(summary.violations)} with violations "
                      f"({summary.wall_seconds:.0f} s)")
    return _finish(study, folder, calibration, console, began)


def _finish(study: Study, folder: Path, calibration: Path | None, console: Console,
            began: float) -> int:
    outcome: StudyOutcome = finish_study(study, folder, calibration_folder=calibration)
    for entry in outcome.recommendation["recommendations"]:
        console.print(f"[bold]{entry['preemption_rate']:g}/h[/]: {entry['why']}")
    if outcome.validation is not None:
        validation = outcome.validation
        console.print(f"simulator: median relative error "
                      f"{validation['median_relative_error']:.3f} -> "
                      f"{'validated' if validation['validated'] else 'NOT VALIDATED'}")
    if outcome.violations:
        console.print(f"[bold red]{outcome.violations} run(s) broke exactly-once delivery: "
                      f"see {outcome.report}#violations[/]")
    if outcome.hung:
        console.print(f"[bold red]{outcome.hung} run(s) hung (past run_timeout): see "
                      f"{outcome.report}#violations[/]")
    console.print(f"report: {outcome.report}  ({time.monotonic() - began:.0f} s in all)")
    print(outcome.report)
    return 1 if outcome.violations or outcome.hung else 0


if __name__ == "__main__":
    sys.exit(main())
