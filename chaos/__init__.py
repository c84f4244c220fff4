"""Chaos harness: kill Dask workers at exact points mid-protocol, from replayable schedules.

    from chaos import ChaosCluster, Fault, FaultSchedule, AtStep, Workload, run_schedule

    schedule = FaultSchedule((Fault("sigkill", AtStep(step=1, fraction=0.5, task="t3")),))
    with ChaosCluster.local(n_workers=3) as cluster:
        record = run_schedule(schedule, "resilience", {"task_registry": "memory"},
                              Workload(), cluster, out="runs/1")

Hypothesis strategies live in `chaos.strategies` (they need the `chaos` extra); the
checker of histories in `chaos.checker`; the command line in `python -m chaos`.

A campaign runs Hypothesis-drawn schedules against a grid of configurations, then
writes the report folder and checks the gates (`python -m chaos campaign`):

    plan = plan_campaign("ci")
    with ChaosCluster.local(plan.workers) as cluster:
        result = run_campaign(plan, cluster, "build/reports/chaos-x")
    outcome = finish_campaign(result, thresholds=load_gate_thresholds())
    outcome.gates.passed, outcome.report
"""

from chaos.campaign import (
    PROFILES,
    CampaignPlan,
    CampaignProfile,
    CampaignResult,
    CampaignRun,
    RunSpec,
    SavedRun,
    plan_campaign,
    run_and_save,
    run_campaign,
)
from chaos.campaign_folder import CampaignOutcome, finish_campaign
from chaos.campaign_progress import CampaignProgress
from chaos.campaign_summary import summarise_campaign
from chaos.checker import Verdict, check_history, load_history
from chaos.cluster import ChaosCluster, ClusterSnapshot
from chaos.errors import (
    ChaosError,
    ClusterError,
    FaultError,
    ScheduleError,
    TargetUnavailable,
    WorkloadError,
)
from chaos.faults import FAULT_KINDS, FaultKind
from chaos.gates import (
    GateReport,
    GateResult,
    GateThresholds,
    evaluate_gates,
    load_gate_thresholds,
)
from chaos.grid import Configuration, Grid, GridAxes, build_grid, parse_grid
from chaos.history import HistoryWriter, read_history
from chaos.probes import ProbedProtocol, ProbePlan, checkpoints, probed, progress
from chaos.replay import replay_command
from chaos.roles import RandomWorker, ReplicaHolder, RunningWorker
from chaos.runner import RunRecord, run_schedule
from chaos.schedule import Fault, FaultSchedule
from chaos.schedule_draw import draw_schedules
from chaos.targets import TARGETS, Target, TargetConfig, make_target
from chaos.triggers import AtStep, AtTime, InputHeld, Poisson, ResultReady
from chaos.workloads import SyntheticPose, Workload

__all__ = [
    "FAULT_KINDS",
    "PROFILES",
    "TARGETS",
    "AtStep",
    "AtTime",
    "CampaignOutcome",
    "CampaignPlan",
    "CampaignProfile",
    "CampaignProgress",
    "CampaignResult",
    "CampaignRun",
    "ChaosCluster",
    "ChaosError",
    "ClusterError",
    "ClusterSnapshot",
    "Configuration",
    "Fault",
    "FaultError",
    "FaultKind",
    "FaultSchedule",
    "GateReport",
    "GateResult",
    "GateThresholds",
    "Grid",
    "GridAxes",
    "HistoryWriter",
    "InputHeld",
    "Poisson",
    "ProbePlan",
    "ProbedProtocol",
    "RandomWorker",
    "ReplicaHolder",
    "ResultReady",
    "RunRecord",
    "RunSpec",
    "RunningWorker",
    "SavedRun",
    "ScheduleError",
    "SyntheticPose",
    "Target",
    "TargetConfig",
    "TargetUnavailable",
    "Verdict",
    "Workload",
    "WorkloadError",
    "build_grid",
    "check_history",
    "checkpoints",
    "draw_schedules",
    "evaluate_gates",
    "finish_campaign",
    "load_gate_thresholds",
    "load_history",
    "make_target",
    "parse_grid",
    "plan_campaign",
    "probed",
    "progress",
    "read_history",
    "replay_command",
    "run_and_save",
    "run_campaign",
    "run_schedule",
    "summarise_campaign",
]
