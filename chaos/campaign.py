"""A campaign: Hypothesis-drawn fault schedules run against every configuration of a grid.

    plan = plan_campaign("ci", targets=("resilience", "dask-raw"))
    with ChaosCluster.local(plan.workers) as cluster:
        result = run_campaign(plan, cluster, "build/reports/chaos-x")

Every schedule runs against every configuration (a paired design: configurations are
compared on the very same faults), and each configuration also gets a few fault-free
runs, the reference of the overhead figures. Fault-free and faulty runs are
interleaved over the campaign, so a slow patch of a shared machine weighs on both.
One `ChaosCluster` serves the whole campaign; each run is bounded by `run_timeout`,
so a hang is a verdict, never a stuck campaign. Each run's history, schedule.json
and summary.json are written to `out/runs/<run_id>/` as it ends, so an interrupted
campaign still leaves its evidence; `chaos.campaign_folder` later keeps the failing
runs and a sample of the passing ones, and writes the report and the gates.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.checker import Verdict, check_history
from chaos.cluster import ChaosCluster
from chaos.errors import ChaosError, ClusterError
from chaos.faults import FAULT_KINDS, FaultKind
from chaos.grid import Configuration, GridAxes, build_grid
from chaos.history import HISTORY_FILE
from chaos.replay import DEFAULT_TIMEOUT, DEFAULT_WORKERS, SCHEDULE_FILE, replay_command
from chaos.runner import RunRecord, run_schedule
from chaos.schedule import FaultSchedule
from chaos.schedule_draw import draw_schedules
from chaos.targets import Target, make_target
from chaos.workloads import Workload

DEFAULT_TARGETS = ("resilience", "dask-raw")
RUNS_FOLDER = "runs"
RUN_SUMMARY_FILE = "summary.json"

TargetFactory = Callable[[str], Target]

# Seconds before a run is "hung". Above the library's own 30 s bounds on one gather or
# placement, so that a run stalled by one of those ends as a slow run (caught by the
# recovery gate), and "hung" means a run that would not have ended by itself. It is
# also `python -m chaos replay`'s default, so a replay needs no --timeout.
RUN_TIMEOUT = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class CampaignProfile:
    """How big a campaign is. `seed` None draws a new campaign seed each time."""

    name: str
    schedules: int  # fault schedules, each run against every configuration
    clean_runs: int  # fault-free runs per configuration, for the overhead figures
    max_faults: int  # faults per schedule: 1 to this
    run_timeout: float  # seconds before a run is declared hung
    keep_passing: int  # passing runs with faults kept on disk, per configuration
    seed: int | None


PROFILES: Mapping[str, CampaignProfile] = {
    # CI gates a change: small, and the same schedules every time (a fixed seed), so a
    # failure is a regression rather than a newly drawn schedule. ~100 runs, ~2 min.
    "ci": CampaignProfile("ci", schedules=4, clean_runs=2, max_faults=3,
                          run_timeout=RUN_TIMEOUT, keep_passing=1, seed=0),
    # A developer's look around: new schedules every time, ~300 runs, ~6 min.
    "dev": CampaignProfile("dev", schedules=15, clean_runs=3, max_faults=3,
                           run_timeout=RUN_TIMEOUT, keep_passing=2, seed=None),
    # Thousands of runs (150 schedules x 16 configurations), ~1 h on 2 cores.
    "nightly": CampaignProfile("nightly", schedules=150, clean_runs=10, max_faults=3,
                               run_timeout=RUN_TIMEOUT, keep_passing=3, seed=None),
}


@dataclass(frozen=True)
class RunSpec:
    """One run of a campaign: a configuration under a schedule, or fault-free."""

    configuration: Configuration
    schedule: FaultSchedule
    number: int  # which schedule (faulty) or which fault-free run, from 0
    clean: bool = False

    @property
    def run_id(self) -> str:
        return f"{'c' if self.clean else 's'}{self.number:03d}-{self.configuration.slug}"


@dataclass(frozen=True)
class CampaignPlan:
    """Everything a campaign will run, fixed before the first run."""

    profile: str
    seed: int
    configurations: tuple[Configuration, ...]
    schedules: tuple[FaultSchedule, ...]
    clean_runs: int
    workload: Workload
    run_timeout: float
    keep_passing: int
    workers: int = DEFAULT_WORKERS
    excluded: tuple[str, ...] = ()
    kinds: tuple[FaultKind, ...] = FAULT_KINDS
    max_faults: int = 3

    def runs(self) -> list[RunSpec]:
        """Every run, interleaved: round i holds fault-free run i and schedule i of every
        configuration, so the campaign's early runs already cover the whole grid."""
        specs: list[RunSpec] = []
        for number in range(max(len(self.schedules), self.clean_runs)):
            for configuration in self.configurations:
                if number < self.clean_runs:
                    specs.append(RunSpec(configuration, FaultSchedule((), seed=self.seed),
                                         number, clean=True))
                if number < len(self.schedules):
                    specs.append(RunSpec(configuration, self.schedules[number], number))
        return specs

    def describe(self) -> str:
        targets = ", ".join(dict.fromkeys(c.target for c in self.configurations))
        w = self.workload
        return (
            f"campaign '{self.profile}' (seed {self.seed}): {len(self.schedules)} schedules "
            f"of 1-{self.max_faults} faults + "
            f"{self.clean_runs} fault-free runs, on each of {len(self.configurations)} "
            f"configurations ({targets}) = {len(self.runs())} runs; workload {w.n_tasks} tasks "
            f"x {w.n_steps} steps of {w.step_seconds * 1000:g} ms; {self.workers} workers; "
            f"runs time out after {self.run_timeout:g} s"
        )


@dataclass(frozen=True)
class CampaignRun:
    """One finished run: its spec, history and verdict, and its folder while kept."""

    spec: RunSpec
    history: tuple[dict[str, Any], ...]
    verdict: Verdict
    folder: Path | None
    makespan: float
    seconds: float  # wall time, the cluster's settling included

    @property
    def run_id(self) -> str:
        return self.spec.run_id


@dataclass(frozen=True)
class CampaignResult:
    plan: CampaignPlan
    runs: tuple[CampaignRun, ...]
    out: Path
    started_at: float  # epoch seconds
    wall_seconds: float
    # Why the campaign stopped before its last run (interrupted, cluster unusable).
    stopped: str | None = None

    @property
    def runs_per_minute(self) -> float:
        return 60.0 * len(self.runs) / self.wall_seconds if self.wall_seconds > 0 else 0.0


# ---------------------------------------------------------------------------- planning


def plan_campaign(
    profile: str = "ci",
    *,
    seed: int | None = None,
    targets: Sequence[str] = DEFAULT_TARGETS,
    axes: GridAxes | None = None,
    configurations: Sequence[Configuration] | None = None,
    schedules: int | Sequence[FaultSchedule] | None = None,
    clean_runs: int | None = None,
    max_faults: int | None = None,
    kinds: Sequence[FaultKind] = FAULT_KINDS,
    workload: Workload | Mapping[str, Any] | None = None,
    run_timeout: float | None = None,
    keep_passing: int | None = None,
    workers: int = DEFAULT_WORKERS,
) -> CampaignPlan:
    """A campaign plan from a profile, with any of its figures overridden.

    `configurations` replaces the grid of `targets` x `axes` (e.g. a test's broken
    variant); `schedules` may be a count (drawn with Hypothesis) or the schedules;
    `workload` a Workload, or fields that override the default one (seeded like the
    campaign).
    """
    if profile not in PROFILES:
        raise ChaosError(f"--profile {profile!r}: choose one of {', '.join(PROFILES)}.")
    base = PROFILES[profile]
    if seed is None:
        seed = base.seed if base.seed is not None else int.from_bytes(os.urandom(2), "big")
    excluded: tuple[str, ...] = ()
    if configurations is None:
        grid = build_grid(targets, axes)
        configurations, excluded = grid.configurations, grid.excluded
    slugs = [configuration.slug for configuration in configurations]
    twice = sorted({slug for slug in slugs if slugs.count(slug) > 1})
    if twice:
        raise ChaosError(f"configurations {twice} appear twice; runs are named by "
                         "configuration, so give each one once.")
    if not isinstance(workload, Workload):
        workload = Workload.from_dict({**Workload(seed=seed).to_dict(), **(workload or {})})
    faults = base.max_faults if max_faults is None else max_faults
    if schedules is None or isinstance(schedules, int):
        count = base.schedules if schedules is None else schedules
        drawn = draw_schedules(count, seed=seed, task_ids=workload.task_ids(),
                               n_steps=workload.n_steps, max_faults=faults, kinds=kinds)
    else:
        drawn = list(schedules)
    for name, value in (("clean_runs", clean_runs), ("keep_passing", keep_passing)):
        if value is not None and value < 0:
            raise ChaosError(f"{name}={value}: use 0 or more.")
    timeout = base.run_timeout if run_timeout is None else run_timeout
    if timeout <= 0:
        raise ChaosError(f"run_timeout={timeout}: a run needs a positive time bound.")
    return CampaignPlan(
        profile=profile, seed=seed, configurations=tuple(configurations),
        schedules=tuple(drawn),
        clean_runs=base.clean_runs if clean_runs is None else clean_runs,
        workload=workload, run_timeout=timeout,
        keep_passing=base.keep_passing if keep_passing is None else keep_passing,
        workers=workers, excluded=excluded, kinds=tuple(kinds), max_faults=faults,
    )


# ---------------------------------------------------------------------------- running


def run_campaign(
    plan: CampaignPlan,
    cluster: ChaosCluster,
    out: str | os.PathLike[str],
    *,
    target_factory: TargetFactory = make_target,
    on_run: Callable[[CampaignRun], None] | None = None,
    warm_up: bool = True,
) -> CampaignResult:
    """Run every run of `plan` on `cluster`, writing each to `out/runs/<run_id>/`.

    Ctrl-C stops the campaign after the current run; a cluster that cannot be brought
    back between runs stops it too. Either way the runs so far are returned, with
    `stopped` saying why. `on_run` is called after each run (progress display).
    `warm_up` first runs each target once without faults, unrecorded: the first run
    on a fresh cluster pays for imports and connections on the workers, which would
    otherwise count as overhead of whichever configuration came first.
    """
    folder = Path(out)
    runs_dir = folder / RUNS_FOLDER
    runs_dir.mkdir(parents=True, exist_ok=True)
    done: list[CampaignRun] = []
    stopped: str | None = None
    started_at, began = time.time(), time.monotonic()
    try:
        if warm_up:
            _warm_up(plan, cluster, target_factory)
        for spec in plan.runs():
            try:
                run = _run_one(spec, plan, cluster, runs_dir, target_factory)
            except ClusterError as error:
                stopped = f"the cluster could not be reset between runs: {error}"
                break
            done.append(run)
            if on_run is not None:
                on_run(run)
    except KeyboardInterrupt:
        stopped = "interrupted (Ctrl-C)"
    return CampaignResult(plan, tuple(done), folder, started_at, time.monotonic() - began,
                          stopped)


@dataclass(frozen=True)
class SavedRun:
    """One run, judged, with its folder ready for `python -m chaos replay`."""

    record: RunRecord
    verdict: Verdict
    folder: Path
    replay: str  # the command that runs it again


def run_and_save(
    schedule: FaultSchedule,
    configuration: Configuration,
    workload: Workload,
    cluster: ChaosCluster,
    folder: str | os.PathLike[str],
    *,
    timeout: float,
    run_id: str | None = None,
    target_factory: TargetFactory = make_target,
) -> SavedRun:
    """Run `schedule` against `configuration`, judge it, and save it replayably.

    `folder` receives history.jsonl, schedule.json and summary.json (the recipe
    `python -m chaos replay folder/schedule.json` reads). A cluster that does not
    settle before the run gets one hard reset; a second failure raises ClusterError.
    """
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    schedule.save(path / SCHEDULE_FILE)
    record: RunRecord | None = None
    for attempt in (1, 2):
        try:
            record = run_schedule(schedule, target_factory(configuration.target),
                                  configuration.config, workload, cluster, out=path,
                                  timeout=timeout, run_id=run_id)
            break
        except ClusterError:
            if attempt == 2:
                raise
            with contextlib.suppress(Exception):
                cluster.hard_reset()
    assert record is not None
    verdict = check_history(record.history, workload.oracle())
    replay = replay_command(path, workers=len(record.history[0].get("workers") or ()) or None,
                            timeout=timeout)
    _write_run_summary(record, path, replay)
    return SavedRun(record, verdict, path, replay)


def _warm_up(plan: CampaignPlan, cluster: ChaosCluster, target_factory: TargetFactory) -> None:
    first_of = {c.target: c for c in reversed(plan.configurations)}
    for configuration in first_of.values():
        with contextlib.suppress(ChaosError):  # a warm-up is no verdict
            run_schedule(FaultSchedule((), seed=plan.seed), target_factory(configuration.target),
                         configuration.config, plan.workload, cluster,
                         timeout=plan.run_timeout)


def _run_one(spec: RunSpec, plan: CampaignPlan, cluster: ChaosCluster, runs_dir: Path,
             target_factory: TargetFactory) -> CampaignRun:
    began = time.monotonic()
    saved = run_and_save(spec.schedule, spec.configuration, plan.workload, cluster,
                         runs_dir / spec.run_id, timeout=plan.run_timeout, run_id=spec.run_id,
                         target_factory=target_factory)
    return CampaignRun(spec, saved.record.history, saved.verdict, saved.folder,
                       saved.record.makespan, time.monotonic() - began)


def _write_run_summary(record: RunRecord, folder: Path, replay: str) -> None:
    """summary.json beside the history: what `python -m chaos replay` reads back."""
    from chaos.cli import summarise  # the CLI owns the per-run summary's format

    summary = summarise(record, replay)
    summary["history"] = str(folder / HISTORY_FILE)
    (folder / RUN_SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n",
                                           encoding="utf-8")
