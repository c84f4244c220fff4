"""Chaos harness: kill Dask workers at exact points mid-protocol, from replayable schedules.

    from chaos import ChaosCluster, Fault, FaultSchedule, AtStep, Workload, run_schedule

    schedule = FaultSchedule((Fault("sigkill", AtStep(step=1, fraction=0.5, task="t3")),))
    with ChaosCluster.local(n_workers=3) as cluster:
        record = run_schedule(schedule, "resilience", {"task_registry": "memory"},
                              Workload(), cluster, out="runs/1")
    check_history(record.history, Workload().oracle()).valid

The packages follow the data, one way (docs/ARCHITECTURE.md):

    spec -> harness (probes, workload) -> history -> judge -> analysis -> campaign -> cli

`chaos.spec`, `chaos.history`, `chaos.judge`, `chaos.probes` and `chaos.workload` are
plain Python: importing them (or this package) does not import Dask. The names of the
harness, the campaign and the analysis load on first use. The Hypothesis strategies
(`fault_schedules`, `draw_schedules`) need the `chaos` extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chaos.errors import (
    ChaosError,
    ClusterError,
    FaultError,
    HistoryError,
    ScheduleError,
    TargetUnavailable,
    WorkloadError,
)
from chaos.history import HistoryWriter, read_history, replay_command
from chaos.judge import Verdict, check_history
from chaos.probes import ProbedProtocol, ProbePlan, checkpoints, probed, progress
from chaos.spec import (
    FAULT_KINDS,
    AtStep,
    AtTime,
    Fault,
    FaultKind,
    FaultSchedule,
    InputHeld,
    Poisson,
    RandomWorker,
    ReplicaHolder,
    ResultReady,
    RunningWorker,
)
from chaos.workload import SyntheticPose, Workload

if TYPE_CHECKING:
    from chaos.analysis import (
        GateReport,
        GateResult,
        GateThresholds,
        evaluate_gates,
        load_gate_thresholds,
        summarise_campaign,
    )
    from chaos.campaign import (
        PROFILES,
        CampaignOutcome,
        CampaignPlan,
        CampaignProfile,
        CampaignProgress,
        CampaignResult,
        CampaignRun,
        Configuration,
        Grid,
        GridAxes,
        RunSpec,
        SavedRun,
        build_grid,
        finish_campaign,
        parse_grid,
        plan_campaign,
        run_and_save,
        run_campaign,
    )
    from chaos.harness import (
        TARGETS,
        ChaosCluster,
        ClusterSnapshot,
        RunRecord,
        Target,
        TargetConfig,
        make_target,
        run_schedule,
    )
    from chaos.spec.strategies import draw_schedules, fault_schedules

# Names whose packages import Dask, pandas or Hypothesis: loaded when first asked for.
_LAZY = {
    **dict.fromkeys(("GateReport", "GateResult", "GateThresholds", "evaluate_gates",
                     "load_gate_thresholds", "summarise_campaign"), "chaos.analysis"),
    **dict.fromkeys(("PROFILES", "CampaignOutcome", "CampaignPlan", "CampaignProfile",
                     "CampaignProgress", "CampaignResult", "CampaignRun", "Configuration",
                     "Grid", "GridAxes", "RunSpec", "SavedRun", "build_grid", "finish_campaign",
                     "parse_grid", "plan_campaign", "run_and_save", "run_campaign"),
                    "chaos.campaign"),
    **dict.fromkeys(("TARGETS", "ChaosCluster", "ClusterSnapshot", "RunRecord", "Target",
                     "TargetConfig", "make_target", "run_schedule"), "chaos.harness"),
    **dict.fromkeys(("draw_schedules", "fault_schedules"), "chaos.spec.strategies"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chaos' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
    "HistoryError",
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
    "fault_schedules",
    "finish_campaign",
    "load_gate_thresholds",
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
