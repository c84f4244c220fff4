"""The study runner: every (cell, repetition) as a real run on the chaos harness.

    summary = run_study(load_study("replicas-vs-preemption", quick=True), "build/studies/x")

Runs go one at a time on one reused `ChaosCluster` per worker count. Faults come from
the harness's seeded Poisson triggers (`experiments.preemption`); every history is
judged by the harness's checker, and a violation is printed at once, in red, and kept
for the report. Each run's row is appended to results.csv as it ends; the same command
on the same folder continues a study and never repeats a finished run. Cells that share
a workload key (the same rate and chain) share their seed within a repetition, so the
settings are compared on the very same fault times and step durations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from chaos import ChaosCluster, ClusterError, FaultSchedule, check_history, run_schedule
from experiments.errors import ResultsError
from experiments.measure import measure
from experiments.memory import DataSampler
from experiments.preemption import fault_schedule, harness_kind
from experiments.results import ResultsFile
from experiments.study import Cell, Study
from experiments.workload import workload_for

STUDY_FILE = "study.json"
RUNS_FOLDER = "runs"
ClusterFactory = Callable[[int], ChaosCluster]


@dataclass(frozen=True)
class PlannedRun:
    cell: Cell
    repetition: int
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.cell.id}-r{self.repetition}"


@dataclass(frozen=True)
class Violation:
    """A run whose history broke exactly-once delivery (or what its settings promise)."""

    run_id: str
    kinds: str
    verdict: str
    history: str


@dataclass
class StudyRunSummary:
    planned: int
    skipped: int  # already in results.csv
    ran: int = 0
    hung: int = 0
    violations: list[Violation] = field(default_factory=list)
    wall_seconds: float = 0.0


def run_seed(study: Study, cell: Cell, repetition: int) -> int:
    """The seed of one run: shared by the cells paired with it, fixed across reruns."""
    text = f"{study.seed}|{cell.workload_key()}|{repetition}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> 1


def plan_runs(study: Study) -> list[PlannedRun]:
    """Every run, repetition-major, so early runs already cover the whole grid."""
    return [PlannedRun(cell, repetition, run_seed(study, cell, repetition))
            for repetition in range(study.repetitions) for cell in study.cells()]


def expected_makespan(cell: Cell) -> float:
    """Real seconds a fault-free run should take: the work over the workers, plus margin."""
    steps_run = 0
    width = 1
    for decoys in cell.fanout:
        steps_run += width
        width *= decoys
    return 1.0 + 1.3 * cell.tasks * steps_run * cell.step_duration.mean() / cell.workers


def run_study(study: Study, out: str | Path, *, console: Console | None = None,
              cluster_factory: ClusterFactory | None = None) -> StudyRunSummary:
    """Run every planned run not yet in `out/results.csv`; returns what happened."""
    folder = Path(out)
    console = console or Console(stderr=True)
    started = time.monotonic()
    with ResultsFile(folder) as results:
        record_study(study, folder)
        done = results.done()
        todo = [run for run in plan_runs(study) if (run.cell.id, run.repetition) not in done]
        summary = StudyRunSummary(planned=len(plan_runs(study)), skipped=len(done))
        if todo:
            _run_all(study, todo, folder, results, console, summary,
                     cluster_factory or _local_cluster)
    summary.wall_seconds = time.monotonic() - started
    return summary


def _local_cluster(workers: int) -> ChaosCluster:
    return ChaosCluster.local(workers, silence_logs=logging.CRITICAL)


def record_study(study: Study, folder: Path) -> None:
    """Write study.json, or check that the folder already holds this very study."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STUDY_FILE
    record = {"name": study.name, "fingerprint": study.fingerprint(), "quick": study.quick,
              "source": study.source, "cells": [cell.to_json() for cell in study.cells()],
              "repetitions": study.repetitions, "seed": study.seed,
              "preemption": {"rates": list(study.preemption.rates),
                             "seconds_per_hour": study.preemption.seconds_per_hour,
                             "mix": [vars(share) for share in study.preemption.mix]},
              "raw": study.raw}
    if path.exists():
        known = json.loads(path.read_text(encoding="utf-8"))
        if known.get("fingerprint") != record["fingerprint"]:
            raise ResultsError(
                f"{folder} holds study {known.get('name')!r} (fingerprint "
                f"{known.get('fingerprint')}, quick={known.get('quick')}), not this "
                f"{study.name!r} ({record['fingerprint']}, quick={study.quick}): its grid, "
                "seed or preemption model differ. Pass another --out to start afresh."
            )
        return
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def _run_all(study: Study, todo: list[PlannedRun], folder: Path, results: ResultsFile,
             console: Console, summary: StudyRunSummary, factory: ClusterFactory) -> None:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(study.name, total=len(todo), status="")
        for workers in sorted({run.cell.workers for run in todo}):
            batch = [run for run in todo if run.cell.workers == workers]
            with factory(workers) as cluster:
                _warm_up(study, batch[0], cluster)
                for planned in batch:
                    row = run_one(study, planned, cluster, folder)
                    results.append(row)
                    summary.ran += 1
                    summary.hung += row["run_status"] in ("hung", "cut-short")
                    if int(row["violations"]):
                        found = Violation(planned.run_id, row["violation_kinds"],
                                          row["verdict"], row["run_dir"])
                        summary.violations.append(found)
                        what = ("HUNG RUN (past run_timeout; the checker counts it)"
                                if found.verdict == "hung" else "EXACTLY-ONCE VIOLATION")
                        progress.console.print(
                            f"[bold red]{what} in {found.run_id}: {found.kinds} (verdict "
                            f"{found.verdict}); history {found.history}/history.jsonl[/]")
                    progress.update(bar, advance=1, status=(
                        f"{len(summary.violations)} violations, {summary.hung} hung"))


def _warm_up(study: Study, planned: PlannedRun, cluster: ChaosCluster) -> None:
    """One unrecorded fault-free run: the first run on fresh workers pays for imports."""
    workload = workload_for(planned.cell, planned.seed)
    try:
        run_schedule(FaultSchedule((), seed=planned.seed), "resilience",
                     _config(planned.cell, None), workload, cluster,
                     timeout=study.run_timeout)
    except ClusterError:
        cluster.hard_reset()


def run_one(study: Study, planned: PlannedRun, cluster: ChaosCluster, folder: Path
            ) -> dict[str, Any]:
    """One real run of one cell: run, judge, measure; returns its results row."""
    cell = planned.cell
    run_dir = folder / RUNS_FOLDER / planned.run_id
    shutil.rmtree(run_dir, ignore_errors=True)  # a run cut short by a kill starts over
    run_dir.mkdir(parents=True)
    workload = workload_for(cell, planned.seed)
    schedule = fault_schedule(study.preemption, cell, planned.seed, expected_makespan(cell))
    schedule.save(run_dir / "schedule.json")
    registry = run_dir / "registry.sqlite"
    began = time.monotonic()
    record = None
    with DataSampler(cluster.client, cell.payload_bytes) as sampler:
        for attempt in (1, 2):
            try:
                record = run_schedule(schedule, "resilience", _config(cell, registry), workload,
                                      cluster, out=run_dir, timeout=study.run_timeout,
                                      run_id=planned.run_id)
                break
            except ClusterError:
                if attempt == 2:
                    raise
                cluster.hard_reset()
    assert record is not None
    verdict = check_history(record.history, workload.oracle())
    metrics = measure(record.history, verdict)
    registry_bytes, how = _registry_bytes(cell, registry, metrics.peak_inflight_steps)
    settings = cell.settings
    replicas = settings["max_task_replicas"]
    return {
        "study": study.name, "cell": cell.id, "repetition": planned.repetition,
        "seed": planned.seed, "preemption_rate": cell.rate,
        "max_task_replicas": "all" if replicas is None else replicas,
        "task_registry": settings["task_registry"] or "none",
        "max_attempts": settings["max_attempts"], "workers": cell.workers,
        "tasks": cell.tasks, "steps": cell.steps, "step_duration": cell.step_duration_label,
        "payload_bytes": cell.payload_bytes, "makespan": round(metrics.makespan, 4),
        "goodput": round(metrics.goodput(cell.workers), 4),
        "useful_seconds": round(metrics.useful_seconds, 4),
        "wasted_seconds": round(metrics.wasted_seconds, 4), "delivered": metrics.delivered,
        "expected": metrics.expected, "failed": metrics.failed, "lost": metrics.lost,
        "duplicated": metrics.duplicated, "violations": metrics.violations,
        "violation_kinds": metrics.violation_kinds, "verdict": metrics.verdict,
        "run_status": metrics.run_status, "kills": metrics.kills,
        "kills_by_kind": json.dumps(metrics.kills_by_kind, sort_keys=True),
        "harness_kinds": "; ".join(harness_kind(s).label(s) for s in study.preemption.mix),
        "peak_worker_data_bytes": sampler.peak_worker_bytes,  # keys held x payload
        "peak_replica_bytes_per_worker": round(sampler.peak_replica_bytes_per_worker),
        "registry_bytes": registry_bytes, "registry_bytes_how": how,
        "wall_seconds": round(time.monotonic() - began, 3),
        "run_dir": str(run_dir),
    }


def _config(cell: Cell, registry: Path | None) -> dict[str, Any]:
    settings = dict(cell.settings)
    options: dict[str, Any] = {}
    if settings.get("worker_wait_timeout") is not None:
        options["worker_wait_timeout"] = settings["worker_wait_timeout"]
    if settings["task_registry"] == "disk" and registry is not None:
        options["registry_path"] = str(registry)
    return {"max_task_replicas": settings["max_task_replicas"],
            "task_registry": settings["task_registry"], "scatter": settings["scatter"],
            "max_attempts": settings["max_attempts"], "step_timeout": settings["step_timeout"],
            "options": options}


def _registry_bytes(cell: Cell, registry: Path, peak_inflight: int) -> tuple[int, str]:
    """The registry's size: the SQLite files for "disk" (then removed: the history is
    the evidence kept), or an estimate (inputs at the fullest) for "memory"."""
    kind = cell.settings["task_registry"]
    if kind is None:
        return 0, "no registry"
    if kind == "memory":
        return peak_inflight * cell.payload_bytes, "estimate: peak unfinished steps x payload"
    files = [registry, registry.with_name(registry.name + "-wal"),
             registry.with_name(registry.name + "-shm"), registry.with_name(registry.name + ".key")]
    size = sum(f.stat().st_size for f in files[:2] if f.exists())
    for file in files:
        file.unlink(missing_ok=True)
    return size, "measured: SQLite file and WAL at the run's end"
