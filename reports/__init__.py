"""HTML reliability reports rendered from checked runs. Pure: never talks to a cluster.

    runs = chaos.analysis.load_runs("build/reports/chaos-20250101-1200")  # checked
    reports.write_report(reports.build_campaign_report(runs), "build/reports/chaos-...")

or in one call `reports.report_from_folder(folder)`, or `python -m reports FOLDER`.
Everything a gate needs is measured in `chaos.analysis`; this package only draws it.
"""

from reports.campaign import build_campaign_report, report_from_folder, write_report
from reports.tables import (
    CampaignTables,
    campaign_tables,
    client_event_table,
    delivery_table,
    fault_table,
    hold_table,
    verdict_matrix,
)

__all__ = [
    "CampaignTables",
    "build_campaign_report",
    "campaign_tables",
    "client_event_table",
    "delivery_table",
    "fault_table",
    "hold_table",
    "report_from_folder",
    "verdict_matrix",
    "write_report",
]
