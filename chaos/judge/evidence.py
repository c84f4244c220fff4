"""The evidence behind each class of violation: lost, duplicated, unexpected, corrupted,
reported-failed and hung outputs, found in a `RunLog` against the oracle."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from chaos.judge.model import ExpectedOutcome
from chaos.judge.runlog import RunLog
from chaos.judge.verdict import DeliveryCounts, ReportedFailure, Violation
from chaos.spec import OutputKey

# The oracle: the fault-free digest of every expected output, by (task_id, index).
Oracle = Mapping[OutputKey, str]


def delivery_violations(log: RunLog, oracle: Oracle) -> tuple[Violation, ...]:
    found: list[Violation] = []
    for (task_id, index), events in log.deliveries.items():
        seqs = tuple(int(e["seq"]) for e in events)
        if (task_id, index) not in oracle:
            found.append(Violation(
                "unexpected", task_id, index, seqs,
                f"delivered {len(events)} time(s), but the oracle expects no such output",
            ))
            continue
        if len(events) > 1:
            found.append(Violation(
                "duplicated", task_id, index, seqs, f"delivered {len(events)} times"
            ))
        truth = oracle[(task_id, index)]
        for event in events:
            if event.get("digest") != truth:
                found.append(Violation(
                    "corrupted", task_id, index, (int(event["seq"]),),
                    f"digest {str(event.get('digest'))[:12]}... != oracle's {truth[:12]}...",
                ))
    return tuple(found)


def failure_violations(
    log: RunLog, failures: Sequence[ReportedFailure], expected: ExpectedOutcome
) -> tuple[Violation, ...]:
    return tuple(
        Violation(
            "reported-failed", failure.task_id, None,
            tuple(seq for _, seq in log.trail.get(failure.task_id, ())),
            f"reported failed ({failure.reason}), but {expected.explain()}",
        )
        for failure in failures
        if failure.excuse is None
    )


def undelivered_violations(log: RunLog, oracle: Oracle) -> tuple[Violation, ...]:
    ended = log.run_status not in ("hung", "cut-short")
    found: list[Violation] = []
    if not ended:
        where = log.run_end_seq if log.run_end_seq is not None else log.last_seq
        detail = (
            "the run ended with status 'hung'" if log.run_end_seq is not None
            else f"the history stops at seq {log.last_seq} with no run-end: cut short"
        )
        found.append(Violation("hung", None, None, (where,), detail))
    for task_id, index in oracle:
        if (task_id, index) in log.deliveries or task_id in log.failed:
            continue
        seqs = log.seqs_behind(task_id, index)
        if ended:
            detail = "never delivered and never reported failed: silent loss"
            found.append(Violation("lost", task_id, index, seqs, detail))
        else:
            detail = "not delivered (nor reported failed) when the run stopped"
            found.append(Violation("hung", task_id, index, seqs, detail))
    return tuple(found)


def delivery_counts(
    log: RunLog, oracle: Oracle, violations: Sequence[Violation]
) -> DeliveryCounts:
    kinds = Counter(v.kind for v in violations)
    delivered = sum(1 for key in log.deliveries if key in oracle)
    return DeliveryCounts(
        expected=len(oracle),
        delivered=delivered,
        deliveries=sum(len(events) for events in log.deliveries.values()),
        lost=kinds["lost"],
        duplicated=kinds["duplicated"],
        unexpected=kinds["unexpected"],
        corrupted=kinds["corrupted"],
        reported_failed=len(log.failed),
    )
