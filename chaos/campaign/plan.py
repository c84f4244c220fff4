"""A campaign's plan: profiles, and every run it will make, fixed before the first run.

    plan = plan_campaign("ci", targets=("resilience", "dask-raw"))
    plan.describe(), plan.runs()

Every schedule runs against every configuration (a paired design: configurations are
compared on the very same faults), and each configuration also gets a few fault-free
runs, the reference of the overhead figures. Fault-free and faulty runs are
interleaved over the campaign, so a slow patch of a shared machine weighs on both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.campaign.cover import coverage_schedules
from chaos.campaign.grid import Configuration, GridAxes, build_grid
from chaos.campaign.regressions import REGRESSION_SCHEDULES
from chaos.errors import ChaosError
from chaos.harness import RefillPolicy
from chaos.history import DEFAULT_TIMEOUT, DEFAULT_WORKERS
from chaos.spec import DEFAULT_KINDS, DEFAULT_NOTICE, AtStep, Fault, FaultKind, FaultSchedule
from chaos.spec.strategies import draw_schedules
from chaos.workload import Workload

DEFAULT_TARGETS = ("resilience", "dask-raw")

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
    regressions: bool = False  # run the fixed regression schedules before the drawn ones
    cover: bool = False  # and the coverage schedules: each kind aimed at each window
    # Where and what, unless the command line says otherwise.
    cluster: str = "local"  # the backend: local, processes, address
    kinds: tuple[FaultKind, ...] = DEFAULT_KINDS
    targets: tuple[str, ...] = DEFAULT_TARGETS
    grid: str | None = None  # the axes, as --grid takes them (None: all of them)
    # Fixed schedules run before the drawn ones, whatever --schedules says: the faults a
    # profile exists for are exercised even when a short campaign draws none of them.
    pinned: tuple[FaultSchedule, ...] = ()


# The deploy profile's pinned schedules: a preemption with notice, and a scheduler
# kill, each landing mid-way through the second step of the second task to start it.
DEPLOY_PINNED = (
    FaultSchedule((Fault("preempt", AtStep(step=1, nth=2, fraction=0.5),
                         notice=DEFAULT_NOTICE),), seed=0),
    FaultSchedule((Fault("scheduler-kill", AtStep(step=1, nth=2, fraction=0.5)),), seed=0),
)


PROFILES: Mapping[str, CampaignProfile] = {
    # CI gates a change: small, and the same schedules every time (a fixed seed), so a
    # failure is a regression rather than a newly drawn schedule; plus the fixed
    # regression and reach schedules, and the coverage schedules (each kind of fault
    # aimed at each window of a task's life). 10 fault-free runs per configuration: with
    # 3, one slow run moved a median, and every ratio to dask-raw's with it (a slow
    # host's typical fault-free overhead read +7 % to +30 %; with 10 or 12, +9 % to +17 %).
    # They are short (0.7 s each). ~630 runs, 15 min on the 2-core CI host.
    "ci": CampaignProfile("ci", schedules=4, clean_runs=10, max_faults=3,
                          run_timeout=RUN_TIMEOUT, keep_passing=1, seed=0, regressions=True,
                          cover=True),
    # A developer's look around: new schedules every time, ~300 runs, ~6 min.
    "dev": CampaignProfile("dev", schedules=15, clean_runs=3, max_faults=3,
                           run_timeout=RUN_TIMEOUT, keep_passing=2, seed=None),
    # Thousands of runs (150 schedules x 16 configurations), ~1 h on 2 cores.
    "nightly": CampaignProfile("nightly", schedules=150, clean_runs=10, max_faults=3,
                               run_timeout=RUN_TIMEOUT, keep_passing=3, seed=None),
    # Deployment: real `dask scheduler` / `dask worker` processes over TLS, preemptions
    # with notice and scheduler kills among the kinds, the library with and without its
    # notice plugin (2 s, the drawn preemptions' notice), and the PR #630 model beside
    # the library. 190 runs, ~8 min; `.ci/run` runs a shorter one (--schedules 2).
    "deploy": CampaignProfile(
        "deploy", schedules=6, clean_runs=2, max_faults=2, run_timeout=RUN_TIMEOUT,
        keep_passing=1, seed=0, cluster="processes",
        kinds=("sigkill", "nanny-close", "retire", "preempt", "scheduler-kill"),
        targets=("resilience", "dask-raw", "prc630"),
        grid="replicas=0,2;registry=none,memory,disk;scatter=on;notice=none,2",
        pinned=DEPLOY_PINNED),
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
    kinds: tuple[FaultKind, ...] = DEFAULT_KINDS
    max_faults: int = 3
    refill: RefillPolicy = field(default_factory=RefillPolicy)
    pinned: int = 0  # how many of `schedules`, first, are fixed (pinned, regressions)
    aimed: bool = False  # the coverage schedules are among them: every cell is aimed at

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
        pinned = f" ({self.pinned} pinned)" if self.pinned else ""
        return (
            f"campaign '{self.profile}' (seed {self.seed}): {len(self.schedules)} schedules"
            f"{pinned} of 1-{self.max_faults} faults + "
            f"{self.clean_runs} fault-free runs, on each of {len(self.configurations)} "
            f"configurations ({targets}) = {len(self.runs())} runs; workload {w.n_tasks} tasks "
            f"x {w.n_steps} steps of {w.step_seconds * 1000:g} ms; {self.workers} workers; "
            f"runs time out after {self.run_timeout:g} s; workers that leave for good are "
            f"replaced {self.refill.describe()}"
        )


def regression_schedules(workload: Workload, kinds: Sequence[FaultKind]) -> list[FaultSchedule]:
    """The fixed regression schedules that fit the workload's tasks and steps and use
    only the campaign's fault kinds."""
    tasks = set(workload.task_ids())
    fitting = []
    for _, schedule in REGRESSION_SCHEDULES:
        triggers = [fault.trigger for fault in schedule.faults]
        if all(fault.kind in kinds for fault in schedule.faults) and all(
                getattr(t, "step", 0) < workload.n_steps
                and getattr(t, "task", None) in (None, *tasks)
                and (getattr(t, "nth", None) or 0) <= workload.n_tasks for t in triggers):
            fitting.append(schedule)
    return fitting


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
    kinds: Sequence[FaultKind] = DEFAULT_KINDS,
    workload: Workload | Mapping[str, Any] | None = None,
    run_timeout: float | None = None,
    keep_passing: int | None = None,
    workers: int = DEFAULT_WORKERS,
    refill: RefillPolicy | None = None,
    cover: bool | None = None,
) -> CampaignPlan:
    """A campaign plan from a profile, with any of its figures overridden.

    `configurations` replaces the grid of `targets` x `axes` (e.g. a test's broken
    variant); `schedules` may be a count (drawn with Hypothesis) or the schedules;
    `workload` a Workload, or fields that override the default one (seeded like the
    campaign); `cover` adds the coverage schedules (None: if the profile does).
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
    pinned = 0
    if schedules is None or isinstance(schedules, int):
        count = base.schedules if schedules is None else schedules
        aimed = base.cover if cover is None else cover
        fixed = [*base.pinned,
                 *(regression_schedules(workload, kinds) if base.regressions else ()),
                 *(coverage_schedules(workload.task_ids(), workload.n_steps, kinds)
                   if aimed else ())]
        pinned = len(fixed)
        drawn = [*fixed, *draw_schedules(count, seed=seed, task_ids=workload.task_ids(),
                                         n_steps=workload.n_steps, max_faults=faults,
                                         kinds=kinds)]
    else:
        drawn, aimed = list(schedules), False
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
        refill=RefillPolicy() if refill is None else refill,
        pinned=pinned, aimed=aimed,
    )
