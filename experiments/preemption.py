"""The study's preemption model as harness faults, and as the simulator's sources.

One fault engine: the real runs get their preemptions from the chaos harness's seeded
`Poisson` triggers aimed at a `RandomWorker`. Poisson preemptions at rate λ per worker
on N workers are, for the cluster, one Poisson process at N·λ with a uniformly random
victim; a mix of kinds splits it into one process per kind (thinning), each at its
share of the rate. `harness_kind` is the one place that maps a kind of the model to a
harness fault kind, and says when it had to substitute one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chaos import FAULT_KINDS, Fault, FaultSchedule, Poisson, RandomWorker
from experiments.study import Cell, KindShare, PreemptionModel


@dataclass(frozen=True)
class HarnessKind:
    """How one kind of the model is inflicted by the harness in the real runs."""

    kind: str  # the harness's FaultKind
    substituted: bool  # the model's kind does not exist in the harness: the closest one
    replaced_mid_run: bool  # the harness brings the worker back during the run
    note: str

    def label(self, share: KindShare) -> str:
        text = f"{share.label} -> {self.kind}"
        return text + (" (substitute)" if self.substituted else "")


def harness_kind(share: KindShare) -> HarnessKind:
    """The harness fault that stands for `share` in the real runs (checked at run time)."""
    if share.kind == "sudden":
        return HarnessKind("sigkill", False, True,
                           "SIGKILL; the nanny starts a new worker process")
    if "preempt" in FAULT_KINDS:
        return HarnessKind("preempt", False, True,
                           "SIGTERM to the worker's process tree, SIGKILL after the notice")
    return HarnessKind(
        "sigterm", True, False,
        "the harness has no 'preempt' kind yet: a nanny-managed SIGTERM close stands in; it "
        "ignores the notice period, and the worker is not replaced until the run ends",
    )


def graceful_cap(workers: int) -> int:
    """Firings per run of a kind the harness does not replace mid-run."""
    return max(1, (workers - 1) // 2)


def per_kind_rates(model: PreemptionModel, rate: float, workers: int) -> list[float]:
    """Cluster-wide preemptions per real second, one rate per kind of the mix."""
    per_second = rate * workers / model.seconds_per_hour
    return [per_second * share.weight for share in model.mix]


def firing_limits(model: PreemptionModel, cell: Cell, expected_makespan: float) -> list[int]:
    """How many times each kind's Poisson trigger may fire in a real run.

    Enough for four times the expected makespan. A kind the harness does not replace
    mid-run is capped at max(1, (workers - 1) // 2) firings, so a run keeps most of its
    workers (with none left it would only wait for `worker_wait_timeout`, and with one
    left it measures a cluster a third its size): the simulator mirrors the cap when it
    is validated against these runs, not when it recommends.
    """
    limits = []
    for share, rate in zip(model.mix, per_kind_rates(model, cell.rate, cell.workers),
                           strict=True):
        limit = max(1, math.ceil(rate * 4 * expected_makespan) + 5)
        if not harness_kind(share).replaced_mid_run:
            limit = min(limit, graceful_cap(cell.workers))
        limits.append(limit)
    return limits


def fault_schedule(model: PreemptionModel, cell: Cell, seed: int,
                   expected_makespan: float) -> FaultSchedule:
    """The harness schedule of one real run: one seeded Poisson trigger per kind."""
    faults = []
    rates = per_kind_rates(model, cell.rate, cell.workers)
    limits = firing_limits(model, cell, expected_makespan)
    for position, (share, rate, limit) in enumerate(zip(model.mix, rates, limits,
                                                        strict=True)):
        if rate <= 0 or limit <= 0:
            continue
        mapped = harness_kind(share)
        trigger = Poisson(mtbf=1.0 / rate, seed=seed * 31 + position, limit=limit)
        extra = {"notice": share.notice * model.compression} if mapped.kind == "preempt" else {}
        faults.append(Fault(mapped.kind, trigger, RandomWorker(salt=position),  # type: ignore[arg-type]
                            **extra))
    return FaultSchedule(tuple(faults), seed=seed)
