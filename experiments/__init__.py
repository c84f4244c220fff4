"""Parameter-tuning studies: sweep the library's settings against realistic preemption,
calibrate and validate a simulator on the real runs, and recommend settings.

    from experiments import load_study, run_study, finish_study
    study = load_study("replicas-vs-preemption", quick=True)
    run_study(study, "build/studies/x")              # real runs -> results.csv (resumable)
    outcome = finish_study(study, Path("build/studies/x"))   # -> index.html, recommendation.json

or `python -m experiments list | run NAME [--out DIR] [--quick] | report DIR`.

Names are imported on first use: a worker process unpickles the study's protocols from
`experiments.workload`, and must not pay for matplotlib, scipy and SimPy on every
restart (that would be counted as the cost of preemption).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CalibrationError": "experiments.errors",
    "ExperimentError": "experiments.errors",
    "ResultsError": "experiments.errors",
    "StudyError": "experiments.errors",
    "SimOutcome": "experiments.sim_spec",
    "SimSpec": "experiments.sim_spec",
    "Study": "experiments.study",
    "StudyOutcome": "experiments.pipeline",
    "StudyRunSummary": "experiments.runner",
    "builtin_studies": "experiments.study_file",
    "daly_step": "experiments.closed_forms",
    "expected_time_restart": "experiments.closed_forms",
    "expected_time_steps": "experiments.closed_forms",
    "finish_study": "experiments.pipeline",
    "load_study": "experiments.study_file",
    "parse_study": "experiments.study_file",
    "run_study": "experiments.runner",
    "simulate": "experiments.simulator",
    "young_step": "experiments.closed_forms",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'experiments' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
