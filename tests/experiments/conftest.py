"""Studies' tests: a tiny study file, and the suite's shared harness cluster lent to the runner.

The runner opens one ChaosCluster per worker count and closes it; here it borrows the
session's cluster (tests/conftest.py) instead, so no second cluster competes for the
2 cores, and the borrowed one is not closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos import ChaosCluster
from experiments import finish_study, load_study, run_study

TINY_STUDY = """
name = "tiny"
description = "two settings, two rates, on 3 workers: seconds, not minutes"
mode = "real"
seed = 3
repetitions = {repetitions}
run_timeout = "40s"

[workload]
workers = 3
tasks = 3
steps = 2
fanout = [2, 1]
payload_bytes = "20KB"
step_duration = {{ dist = "uniform", low = "4min", high = "8min" }}

[settings]
max_attempts = 8

[axes]
task_registry = ["none", "memory"]

[preemption]
seconds_per_hour = 1.8
rates = {rates}
kinds = [{{ kind = "sudden", weight = 1.0 }}]

[objective]
max_failure_probability = 0.01
# One run of ~0.7 s per cell on a loaded 2-core host: at rate 0 the two settings, doing
# the same work, once measured 5.4 % apart (CI), past the default 5 % tie.
tie_tolerance = 0.25

[simulation]
repetitions = 20
"""


def write_tiny_study(folder: Path, repetitions: int = 1, rates: str = "[0, 4]") -> Path:
    # 4 per worker-hour: a kill every ~0.15 s on 3 workers, within even a fast run (~0.35 s)
    path = folder / "tiny.toml"
    path.write_text(TINY_STUDY.format(repetitions=repetitions, rates=rates), encoding="utf-8")
    return path


class Borrowed:
    """A cluster the runner may use but not close."""

    def __init__(self, cluster: ChaosCluster) -> None:
        self.cluster = cluster

    def __enter__(self) -> ChaosCluster:
        return self.cluster

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def borrowed_cluster(cluster: ChaosCluster) -> Iterator[object]:
    def factory(workers: int) -> Borrowed:
        assert workers == cluster.n_workers, "the tiny study runs on the suite's 3 workers"
        return Borrowed(cluster)

    yield factory


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory, chaos_cluster: ChaosCluster) -> tuple:
    """The tiny study, run once per session and finished: (study, folder, summary, outcome)."""
    folder = tmp_path_factory.mktemp("tiny-study")
    study = load_study(write_tiny_study(folder))
    out = folder / "out"
    summary = run_study(study, out, cluster_factory=lambda workers: Borrowed(chaos_cluster))
    outcome = finish_study(study, out)
    return study, out, summary, outcome
