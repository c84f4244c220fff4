"""A campaign: Hypothesis-drawn fault schedules run against every configuration of a grid.

    plan = plan_campaign("ci")
    with ChaosCluster.local(plan.workers) as cluster:
        result = run_campaign(plan, cluster, "build/reports/chaos-x")
    outcome = finish_campaign(result, thresholds=load_gate_thresholds())
    outcome.gates.passed

`grid` names the configurations, `plan` fixes every run before the first, `execute`
runs them on one reused cluster (`renewal` starts it afresh if it stops reporting
results), `folder` keeps the evidence and writes the summary
and the gates, `progress` shows how it goes.
"""

from chaos.campaign.execute import (
    RUNS_FOLDER,
    CampaignResult,
    CampaignRun,
    SavedRun,
    TargetFactory,
    run_and_save,
    run_campaign,
)
from chaos.campaign.folder import (
    CampaignOutcome,
    ReportWriter,
    finish_campaign,
    load_summary,
    prune_runs,
)
from chaos.campaign.grid import Configuration, Grid, GridAxes, build_grid, parse_grid
from chaos.campaign.plan import (
    DEFAULT_TARGETS,
    PROFILES,
    RUN_TIMEOUT,
    CampaignPlan,
    CampaignProfile,
    RunSpec,
    plan_campaign,
)
from chaos.campaign.progress import CampaignProgress
from chaos.campaign.regressions import REGRESSION_SCHEDULES
from chaos.campaign.renewal import RenewableCluster
from chaos.campaign.replays import ReplayReport, RunReplays, failing_run_folders, replay_runs

__all__ = [
    "DEFAULT_TARGETS",
    "PROFILES",
    "REGRESSION_SCHEDULES",
    "RUNS_FOLDER",
    "RUN_TIMEOUT",
    "CampaignOutcome",
    "CampaignPlan",
    "CampaignProfile",
    "CampaignProgress",
    "CampaignResult",
    "CampaignRun",
    "Configuration",
    "Grid",
    "GridAxes",
    "RenewableCluster",
    "ReplayReport",
    "ReportWriter",
    "RunReplays",
    "RunSpec",
    "SavedRun",
    "TargetFactory",
    "build_grid",
    "failing_run_folders",
    "finish_campaign",
    "load_summary",
    "parse_grid",
    "plan_campaign",
    "prune_runs",
    "replay_runs",
    "run_and_save",
    "run_campaign",
]
