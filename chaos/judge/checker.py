"""Jepsen-style checker: a pure function of one run's history and the workload's oracle.

`check_history(events, oracle)` returns a `Verdict` with the evidence, as Jepsen's
`total-queue` and `set-full` checkers do, never a bare boolean:

- lost: expected outputs never delivered and never reported failed (silent loss);
- duplicated: outputs delivered more than once;
- unexpected: outputs delivered that the oracle never expected;
- corrupted: outputs delivered with a digest other than the oracle's;
- reported-failed: tasks the system said had failed, when the expected-outcome model
  (`chaos.judge.rules`) says the configuration must have delivered them;
- hung: a run that ended "hung", or a history with no run-end (cut short).

A run with no violation whose scheduled faults did not all land, or that lost a worker
no fault explains (`chaos.judge.landing`), is *inconclusive*, never valid: it proves
less than its schedule claims, or suffered more.

Every violation carries the task id, the output index and the `seq` numbers of the
events behind it. Duplicate *executions* are information, not violations: execution is
at-least-once, delivery must be exactly-once. The event format is docs/history.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chaos.errors import HistoryError
from chaos.judge.evidence import (
    Oracle,
    delivery_counts,
    delivery_violations,
    failure_violations,
    undelivered_violations,
)
from chaos.judge.landing import fault_misses
from chaos.judge.model import OutcomeModel, RunConfiguration, RunFacts
from chaos.judge.rules import DEFAULT_MODEL
from chaos.judge.runlog import RunLog, validated
from chaos.judge.verdict import ReportedFailure, Verdict, VerdictOutcome
from chaos.spec import OutputKey


def check_history(
    events: Iterable[Mapping[str, Any]],
    oracle: Oracle,
    *,
    model: OutcomeModel = DEFAULT_MODEL,
) -> Verdict:
    """Judge one run: the evidence of every violation, against `oracle` and `model`.

    `events` is one run's history in file order (see `chaos.history.read_history`). `oracle` maps
    every expected `(task_id, index)` to its fault-free digest; `index` is a tuple.
    Raises `HistoryError` when the history breaks the format (not when the run failed).
    """
    history = validated(events)
    log = RunLog.read(history)
    expected = model.expect(RunFacts.from_events(history))
    failures = tuple(
        ReportedFailure(task_id, reason, seq, expected.failure_excuse(task_id))
        for task_id, (seq, reason) in log.failed.items()
    )
    violations = (
        delivery_violations(log, oracle)
        + failure_violations(log, failures, expected)
        + undelivered_violations(log, oracle)
    )
    config = RunConfiguration.from_run_start(history[0])
    status = log.run_status
    misses = fault_misses(history)
    outcome: VerdictOutcome = (
        "hung" if status in ("hung", "cut-short") else "invalid" if violations
        else "inconclusive" if any(miss.inconclusive for miss in misses) else "valid"
    )
    return Verdict(
        run_id=str(history[0].get("run_id", "")),
        target=config.target,
        config=dict(history[0].get("config") or {}),
        label=config.label,
        outcome=outcome,
        run_status=status,
        run_error=log.run_error,
        expected=expected,
        violations=violations,
        reported_failures=failures,
        repeated_executions=log.repeated_executions(),
        deliveries=delivery_counts(log, oracle, violations),
        executions=log.execution_counts(),
        last_seq=int(history[-1]["seq"]),
        fault_misses=misses,
    )


def oracle_from_history(events: Iterable[Mapping[str, Any]]) -> dict[OutputKey, str]:
    """The oracle a fault-free reference run gives: the digest of each delivered output.

    Raises `HistoryError` when the run delivered an output twice with different digests,
    because such a run cannot serve as a reference.
    """
    oracle: dict[OutputKey, str] = {}
    for event in events:
        if event.get("type") != "deliver":
            continue
        key = (event["task_id"], tuple(event["index"]))
        if key in oracle and oracle[key] != event["digest"]:
            raise HistoryError(
                f"output {key!r} was delivered with two digests ({oracle[key][:12]}..., "
                f"{event['digest'][:12]}...) at seq {event['seq']}; a reference run must be "
                "deterministic. Use a fault-free run of a seeded workload."
            )
        oracle[key] = event["digest"]
    return oracle
