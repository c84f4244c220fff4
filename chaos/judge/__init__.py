"""Where a verdict is decided: the checker and the expected-outcome model.

    verdict = check_history(read_history("runs/1"), workload.oracle())
    verdict.valid, verdict.violations, verdict.expected.explain()

Both are pure functions of a history (and the workload's oracle), so any verdict can be
recomputed later from the saved file alone.
"""

from chaos.judge.checker import check_history, oracle_from_history
from chaos.judge.evidence import Oracle
from chaos.judge.landing import MISS_CAUSES, FaultMiss, MissCause, fault_misses
from chaos.judge.model import (
    DASK_DEFAULT_ALLOWED_FAILURES,
    ExpectedOutcome,
    InjectedFault,
    Outcome,
    OutcomeModel,
    OutcomeRule,
    RunConfiguration,
    RunFacts,
)
from chaos.judge.rules import (
    DEFAULT_MODEL,
    InlineInputsReschedule,
    NoFaults,
    NothingProtects,
    RegistryResubmits,
    ReplicasKeepAHolder,
    count_distinct_workers_lost,
    count_overlapping_losses,
    expected_outcome,
)
from chaos.judge.verdict import (
    VERDICT_OUTCOMES,
    VIOLATION_KINDS,
    DeliveryCounts,
    ExecutionCounts,
    RepeatedExecution,
    ReportedFailure,
    Verdict,
    VerdictOutcome,
    Violation,
    ViolationKind,
)

__all__ = [
    "DASK_DEFAULT_ALLOWED_FAILURES",
    "DEFAULT_MODEL",
    "MISS_CAUSES",
    "VERDICT_OUTCOMES",
    "VIOLATION_KINDS",
    "DeliveryCounts",
    "ExecutionCounts",
    "ExpectedOutcome",
    "FaultMiss",
    "InjectedFault",
    "InlineInputsReschedule",
    "MissCause",
    "NoFaults",
    "NothingProtects",
    "Oracle",
    "Outcome",
    "OutcomeModel",
    "OutcomeRule",
    "RegistryResubmits",
    "RepeatedExecution",
    "ReplicasKeepAHolder",
    "ReportedFailure",
    "RunConfiguration",
    "RunFacts",
    "Verdict",
    "VerdictOutcome",
    "Violation",
    "ViolationKind",
    "check_history",
    "count_distinct_workers_lost",
    "count_overlapping_losses",
    "expected_outcome",
    "fault_misses",
    "oracle_from_history",
]
