"""Running a campaign's plan on one reused cluster, and saving each run replayably.

    with ChaosCluster.local(plan.workers) as cluster:
        result = run_campaign(plan, cluster, "build/reports/chaos-x")

One `ChaosCluster` serves the whole campaign; each run is bounded by `run_timeout`,
so a hang is a verdict, never a stuck campaign. Each run's history, schedule.json
and summary.json are written to `out/runs/<run_id>/` as it ends, so an interrupted
campaign still leaves its evidence; `chaos.campaign.folder` later keeps the failing
runs and a sample of the passing ones, and writes the summary and the gates.
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

from chaos.analysis import summarise_run
from chaos.campaign.grid import Configuration
from chaos.campaign.plan import CampaignPlan, RunSpec
from chaos.errors import ChaosError, ClusterError
from chaos.harness import (
    ChaosCluster,
    RefillPolicy,
    RunRecord,
    Target,
    Victim,
    make_target,
    run_schedule,
)
from chaos.history import (
    DEFAULT_REFILL_DELAY,
    HISTORY_FILE,
    RUN_SUMMARY_FILE,
    SCHEDULE_FILE,
    WorkerProcess,
    replay_command,
)
from chaos.judge import Verdict, check_history
from chaos.spec import FaultSchedule
from chaos.workload import Workload

RUNS_FOLDER = "runs"

TargetFactory = Callable[[str], Target]


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

    # What the campaign summary reads (chaos.analysis.SummarisedRun).
    @property
    def slug(self) -> str:
        return self.spec.configuration.slug

    @property
    def target(self) -> str:
        return self.spec.configuration.target

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.spec.configuration.config.to_dict()

    @property
    def clean(self) -> bool:
        return self.spec.clean


@dataclass(frozen=True)
class CampaignResult:
    plan: CampaignPlan
    runs: tuple[CampaignRun, ...]
    out: Path
    started_at: float  # epoch seconds
    wall_seconds: float
    # Why the campaign stopped before its last run (interrupted, cluster unusable).
    stopped: str | None = None
    # Replays of the failing runs (chaos.campaign.replays.ReplayReport.to_dict()), if any.
    replays: Mapping[str, Any] | None = None
    # Why the cluster was started afresh mid-campaign, each time (chaos.campaign.renewal).
    renewals: tuple[str, ...] = ()

    @property
    def runs_per_minute(self) -> float:
        return 60.0 * len(self.runs) / self.wall_seconds if self.wall_seconds > 0 else 0.0


def run_campaign(
    plan: CampaignPlan,
    cluster: ChaosCluster,
    out: str | os.PathLike[str],
    *,
    target_factory: TargetFactory = make_target,
    on_run: Callable[[CampaignRun], None] | None = None,
    warm_up: bool = True,
    renew: Callable[[str], ChaosCluster | None] | None = None,
) -> CampaignResult:
    """Run every run of `plan` on `cluster`, writing each to `out/runs/<run_id>/`.

    Ctrl-C stops the campaign after the current run; a cluster that cannot be brought
    back between runs stops it too, unless `renew` (`RenewableCluster.renew`) gives a
    fresh one to go on with. Either way the runs so far are returned, with `stopped`
    saying why. `on_run` is called after each run (progress display).
    `warm_up` first runs each target once without faults, unrecorded: the first run
    on a fresh cluster pays for imports and connections on the workers, which would
    otherwise count as overhead of whichever configuration came first.
    """
    folder = Path(out)
    runs_dir = folder / RUNS_FOLDER
    runs_dir.mkdir(parents=True, exist_ok=True)
    done: list[CampaignRun] = []
    stopped: str | None = None
    renewals: list[str] = []
    started_at, began = time.time(), time.monotonic()
    try:
        warmed: set[WorkerProcess] = set()
        if warm_up:
            _warm_up(plan, cluster, target_factory)
            warmed = _processes(cluster.refresh().workers)
        for spec in plan.runs():
            run: CampaignRun | None = None
            while run is None:
                if warm_up:
                    warmed = _warm_new_workers(spec, plan, cluster, target_factory, warmed)
                try:
                    run = _run_one(spec, plan, cluster, runs_dir, target_factory)
                except ClusterError as error:
                    why = f"before {spec.run_id}: {error}"
                    fresh = renew(why) if renew is not None else None
                    if fresh is None:
                        stopped = f"the cluster could not be reset between runs: {error}"
                        break
                    renewals.append(why)
                    cluster, warmed = fresh, set()
            if run is None:
                break
            done.append(run)
            if on_run is not None:
                on_run(run)
    except KeyboardInterrupt:
        stopped = "interrupted (Ctrl-C)"
    return CampaignResult(plan, tuple(done), folder, started_at, time.monotonic() - began,
                          stopped, renewals=tuple(renewals))


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
    refill: RefillPolicy | None = None,
    replay_of: Sequence[Mapping[str, Any]] | None = None,
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
                                  timeout=timeout, run_id=run_id, refill=refill,
                                  replay_of=replay_of)
            break
        except ClusterError:
            if attempt == 2:
                raise
            with contextlib.suppress(Exception):
                cluster.hard_reset()
    assert record is not None
    verdict = check_history(record.history, workload.oracle())
    start = record.history[0]
    replay = replay_command(path, workers=len(start.get("workers") or ()) or None,
                            timeout=timeout,
                            refill_delay=start.get("refill_delay", DEFAULT_REFILL_DELAY))
    _write_run_summary(record, path, replay)
    return SavedRun(record, verdict, path, replay)


def _warm_up(plan: CampaignPlan, cluster: ChaosCluster, target_factory: TargetFactory) -> None:
    first_of = {c.target: c for c in reversed(plan.configurations)}
    for configuration in first_of.values():
        with contextlib.suppress(ChaosError):  # a warm-up is no verdict
            run_schedule(FaultSchedule((), seed=plan.seed), target_factory(configuration.target),
                         configuration.config, plan.workload, cluster,
                         timeout=plan.run_timeout, refill=plan.refill)


def _warm_new_workers(spec: RunSpec, plan: CampaignPlan, cluster: ChaosCluster,
                      target_factory: TargetFactory,
                      warmed: set[WorkerProcess]) -> set[WorkerProcess]:
    """Before a run, one unrecorded fault-free run of its configuration if workers joined
    since the last run (a nanny's restart, a refill): a new worker's first tasks pay for
    imports and connections, which would count against whichever run came next, most
    often a fault-free one, the reference of the overhead figures. Workers that join
    *during* a run stay cold: that is part of what a fault costs. A worker is its
    process: a restarted one may come back at its old address."""
    with contextlib.suppress(ChaosError):  # run_and_save settles (and resets) again
        workers = _processes(cluster.settle(timeout=30).workers)
        if workers - warmed:
            configuration = spec.configuration
            run_schedule(FaultSchedule((), seed=plan.seed), target_factory(configuration.target),
                         configuration.config, plan.workload, cluster, timeout=plan.run_timeout)
        return workers
    return warmed


def _processes(workers: Mapping[str, Victim]) -> set[WorkerProcess]:
    return {(address, victim.pid) for address, victim in workers.items()}


def _run_one(spec: RunSpec, plan: CampaignPlan, cluster: ChaosCluster, runs_dir: Path,
             target_factory: TargetFactory) -> CampaignRun:
    began = time.monotonic()
    saved = run_and_save(spec.schedule, spec.configuration, plan.workload, cluster,
                         runs_dir / spec.run_id, timeout=plan.run_timeout, run_id=spec.run_id,
                         target_factory=target_factory, refill=plan.refill)
    return CampaignRun(spec, saved.record.history, saved.verdict, saved.folder,
                       saved.record.makespan, time.monotonic() - began)


def _write_run_summary(record: RunRecord, folder: Path, replay: str) -> None:
    """summary.json beside the history: what `python -m chaos replay` reads back."""
    summary = summarise_run(record.history, replay, history_path=folder / HISTORY_FILE)
    (folder / RUN_SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n",
                                           encoding="utf-8")
