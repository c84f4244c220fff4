"""HTML reliability reports built from chaos histories. Pure: never talks to a cluster.

    runs = reports.load_runs("build/reports/chaos-20250101-1200")   # histories, checked
    reports.write_report(reports.build_campaign_report(runs), "build/reports/chaos-20250101-1200")

or in one call `reports.report_from_folder(folder)`, or `python -m reports FOLDER`.
"""

from reports.campaign import build_campaign_report, report_from_folder, write_report
from reports.metrics import ecdf, makespan_overhead
from reports.runs import CheckedRun, OracleFor, check_runs, load_runs, workload_oracle
from reports.tables import (
    CampaignTables,
    campaign_tables,
    client_event_table,
    delivery_table,
    execution_table,
    fault_table,
    recovery_table,
    run_table,
    verdict_matrix,
)

__all__ = [
    "CampaignTables",
    "CheckedRun",
    "OracleFor",
    "build_campaign_report",
    "campaign_tables",
    "check_runs",
    "client_event_table",
    "delivery_table",
    "ecdf",
    "execution_table",
    "fault_table",
    "load_runs",
    "makespan_overhead",
    "recovery_table",
    "report_from_folder",
    "run_table",
    "verdict_matrix",
    "workload_oracle",
    "write_report",
]
