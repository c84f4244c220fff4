"""Measuring runs: tables, statistics, per-run and per-campaign summaries, and the gates.

    runs = load_runs("build/reports/chaos-x")          # histories, checked
    run_table(runs), recovery_table(r.history for r in runs), makespan_overhead(...)
    evaluate_gates(summary, load_gate_thresholds())

Pure functions of histories and verdicts: the gates a campaign must pass are computed
here, and the report (`reports`) only renders them.
"""

from chaos.analysis.coverage import coverage_summary, fault_windows
from chaos.analysis.gates import GateReport, GateResult, evaluate_gates
from chaos.analysis.metrics import ecdf, makespan_overhead
from chaos.analysis.recovery import RECOVERY_PERCENTILES, recovery_figures
from chaos.analysis.run_summary import summarise_run
from chaos.analysis.runs import (
    CheckedRun,
    History,
    OracleFor,
    check_runs,
    load_runs,
    workload_oracle,
)
from chaos.analysis.summary import BASELINE_TARGET, SummarisedRun, summarise_campaign
from chaos.analysis.tables import (
    RESUBMIT_REASONS,
    execution_table,
    index_text,
    landed_faults,
    recovery_table,
    run_identity,
    run_table,
)
from chaos.analysis.thresholds import GateThresholds, load_gate_thresholds

__all__ = [
    "BASELINE_TARGET",
    "RECOVERY_PERCENTILES",
    "RESUBMIT_REASONS",
    "CheckedRun",
    "GateReport",
    "GateResult",
    "GateThresholds",
    "History",
    "OracleFor",
    "SummarisedRun",
    "check_runs",
    "coverage_summary",
    "ecdf",
    "evaluate_gates",
    "execution_table",
    "fault_windows",
    "index_text",
    "landed_faults",
    "load_gate_thresholds",
    "load_runs",
    "makespan_overhead",
    "recovery_figures",
    "recovery_table",
    "run_identity",
    "run_table",
    "summarise_campaign",
    "summarise_run",
    "workload_oracle",
]
