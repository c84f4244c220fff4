"""The rules of the expected-outcome model: one small class per configuration family.

Each rule says when it applies (from the configuration and the faults) and what it then
expects, with why. `DEFAULT_MODEL` tries them in order; the first that applies decides,
like a policy chain. Swap, reorder or add rules by building another `OutcomeModel`.
Every rule is sound rather than tight: when the history cannot prove that a
configuration must have survived, the rule says "may fail loudly" and says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from chaos.judge.model import ExpectedOutcome, OutcomeModel, RunFacts
from chaos.spec import TaskId

# Seconds after the scheduler noticed a holder's loss within which the library's replica
# guard has re-made the copy: its top-up runs every AMM cycle (2 s by default) and when
# the library places inputs; twice a cycle and some slack for a busy 2-core machine.
REPLICA_GUARD_GRACE = 5.0


@dataclass(frozen=True)
class NoFaults:
    """With no data-losing fault, every configuration, even raw Dask, must deliver all."""

    name: str = "no-faults"

    def applies(self, facts: RunFacts) -> bool:
        return not facts.losses

    def expect(self, facts: RunFacts) -> ExpectedOutcome:
        graceful = len(facts.faults)
        why = "no fault landed" if not graceful else f"only {graceful} graceful fault(s) (retire)"
        return ExpectedOutcome("must-deliver-all", self.name, why + ", so nothing was lost")


@dataclass(frozen=True)
class SchedulerLost:
    """A killed scheduler takes every task and every worker's data with it. Only a durable
    ("disk") registry outlives it: the run resumes against the new scheduler and must
    deliver everything (the registry rule judges it). Any other configuration may fail,
    loudly: the library reports its unfinished tasks; a silent loss is still a loss.
    """

    name: str = "scheduler-lost"

    def applies(self, facts: RunFacts) -> bool:
        return (any(fault.kind == "scheduler-kill" for fault in facts.faults)
                and facts.config.task_registry != "disk")

    def expect(self, facts: RunFacts) -> ExpectedOutcome:
        return ExpectedOutcome(
            "may-fail-loudly", self.name,
            "the scheduler was killed, and only a disk registry outlives it",
        )


@dataclass(frozen=True)
class RegistryResubmits:
    """A registry resubmits every lost step, so everything is delivered unless a task may
    have used up `max_attempts`. Each failed attempt needs its own fault, a death of the
    worker running it, or a protocol error; a task with fewer of these before it was
    declared failed must have been delivered.
    """

    name: str = "registry"

    def applies(self, facts: RunFacts) -> bool:
        return facts.config.task_registry is not None

    def expect(self, facts: RunFacts) -> ExpectedOutcome:
        limit = facts.config.max_attempts
        excused = []
        for task_id in facts.failed_at_seq:
            budget = (
                facts.faults_before(task_id)
                + facts.unexplained_deaths.get(task_id, 0)
                + facts.protocol_errors.get(task_id, 0)
            )
            if budget >= limit:
                excused.append((task_id, (
                    f"{budget} fault(s), deaths or errors before it failed could have used "
                    f"up max_attempts={limit}"
                )))
        why = (
            f"task_registry={facts.config.task_registry!r} resubmits lost steps, and a task "
            f"may fail only after max_attempts={limit} failed attempts"
        )
        return ExpectedOutcome("must-deliver-all", self.name, why, tuple(excused))


@dataclass(frozen=True)
class InlineInputsReschedule:
    """Inputs inline in the task graph live on the scheduler, so Dask reruns a step whose
    worker died, until the step has been interrupted more than `allowed_failures` times
    and Dask raises KilledWorker (which, without a registry, must be reported).
    """

    name: str = "inline-inputs"

    def applies(self, facts: RunFacts) -> bool:
        return facts.config.task_registry is None and not facts.config.scatter

    def expect(self, facts: RunFacts) -> ExpectedOutcome:
        why = (
            "scatter=False keeps inputs in the task graph, so Dask reschedules steps after "
            f"worker deaths, up to allowed-failures={facts.config.allowed_failures}"
        )
        return ExpectedOutcome(
            "must-deliver-all", self.name, why, _killed_worker_excuses(facts)
        )


@dataclass(frozen=True)
class ReplicasKeepAHolder:
    """With n >= 2 copies of each scattered input and no registry, an input survives while
    one holder lives. Holder losses are counted by `count_holder_losses` (default: every
    data-losing fault on a distinct worker during the run, sound whether or not the
    library re-replicates); the run must deliver all when fewer than n were lost.
    """

    name: str = "replicas"
    count_holder_losses: Callable[[RunFacts], int] | None = None

    def applies(self, facts: RunFacts) -> bool:
        config = facts.config
        return (
            config.task_registry is None
            and config.scatter
            and (config.max_task_replicas is None or config.max_task_replicas >= 2)
        )

    def expect(self, facts: RunFacts) -> ExpectedOutcome:
        copies = _copies(facts)
        count = self.count_holder_losses or _default_holder_losses(facts)
        lost = count(facts)
        if lost >= copies:
            why = (
                f"{lost} holder loss(es) >= {copies} copies (max_task_replicas="
                f"{facts.config.max_task_replicas!r}), so an input may have lost every "
                "holder, and without a registry that task can only fail"
            )
            # Time-aware: a task is excused only if, when it failed, as many losses had
            # happened (counted the same way) as it had copies, and a fault reached it.
            excused = tuple(
                (task_id, excuse) for task_id, excuse in facts.explained_failures(why)
                if count(_before(facts, facts.failed_at_time[task_id])) >= copies
            )
            return ExpectedOutcome("may-fail-loudly", self.name, why,
                                   excused + _killed_worker_excuses(facts), bounded=True)
        why = (
            f"{lost} holder loss(es) < {copies} copies, so every input kept a live holder"
        )
        return ExpectedOutcome(
            "must-deliver-all", self.name, why, _killed_worker_excuses(facts)
        )


@dataclass(frozen=True)
class NothingProtects:
    """No registry, and at most one copy of each scattered input: a data-losing fault may
    take an input with it, and the task can then only be reported failed.
    """

    name: str = "unprotected"

    def applies(self, facts: RunFacts) -> bool:
        return True

    def expect(self, facts: RunFacts) -> ExpectedOutcome:
        config = facts.config
        why = (
            f"{len(facts.losses)} data-losing fault(s) with no registry and "
            f"max_task_replicas={config.max_task_replicas!r} (one copy of each input): "
            "losses are allowed, but only as reported failures of tasks a fault reached"
        )
        # Bounded: a task reported failed with no lost, killed or interrupted attempt
        # after a data-losing fault (e.g. every task failed at the first fault) is a
        # failure the faults cannot explain.
        return ExpectedOutcome("may-fail-loudly", self.name, why,
                               facts.explained_failures(why), bounded=True)


DEFAULT_MODEL = OutcomeModel(
    rules=(
        NoFaults(),
        SchedulerLost(),
        RegistryResubmits(),
        InlineInputsReschedule(),
        ReplicasKeepAHolder(),
        NothingProtects(),
    )
)


def expected_outcome(
    events: Iterable[Mapping[str, Any]], model: OutcomeModel = DEFAULT_MODEL
) -> ExpectedOutcome:
    """The expected outcome of the run recorded in `events`, under `model`."""
    return model.expect(RunFacts.from_events(events))


# ------------------------------------------------------------------ holder-loss counters


def count_distinct_workers_lost(facts: RunFacts) -> int:
    """Distinct worker processes that lost their copies during the run (retired ones
    included; a worker its nanny restarted at the same address is another process).

    Sound with or without re-replication: n holders of one input are n distinct workers,
    so an input cannot lose all of them unless at least n distinct workers were lost.
    """
    return len({fault.victim for fault in facts.copy_losses})


def count_overlapping_losses(grace: float = 5.0) -> Callable[[RunFacts], int]:
    """A counter for libraries that re-replicate after a holder dies.

    A loss is "open" from landing until `grace` seconds after the scheduler noticed it
    (forever when never noticed); the count is the most losses open at one instant.
    The grace must cover the re-replication delay (the AMM runs every 2 s by default).
    """

    def count(facts: RunFacts) -> int:
        # Per worker first: a worker hit again while its loss is still open is the same
        # holder lost (no copy was re-made on it in between), so its intervals merge.
        by_worker: dict[Any, list[tuple[float, float]]] = {}
        for fault in sorted(facts.copy_losses, key=lambda f: f.landed_at):
            closes = float("inf") if fault.noticed_at is None else fault.noticed_at + grace
            spans = by_worker.setdefault(fault.victim, [])
            if spans and fault.landed_at <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], closes))
            else:
                spans.append((fault.landed_at, closes))
        edges: list[tuple[float, int]] = []
        for spans in by_worker.values():
            for opens, closes in spans:
                edges += [(opens, 1), (closes, -1)]
        open_now = most = 0
        for _, step in sorted(edges, key=lambda edge: (edge[0], -edge[1])):
            open_now += step
            most = max(most, open_now)
        return most

    return count


# ---------------------------------------------------------------------------- internals


def _default_holder_losses(facts: RunFacts) -> Callable[[RunFacts], int]:
    """The library's replica guard re-makes a lost copy once the scheduler noticed the
    loss (within a few AMM cycles), so its losses count only while they overlap; any
    other system keeps no count of copies: every distinct worker lost counts."""
    if facts.config.target == "resilience" and facts.config.replica_guard == "policy":
        return count_overlapping_losses(REPLICA_GUARD_GRACE)
    return count_distinct_workers_lost


def _before(facts: RunFacts, moment: float) -> RunFacts:
    """The facts with only the faults fired by `moment` (see `explained_failures`)."""
    return replace(facts, faults=tuple(f for f in facts.faults if f.fired_at <= moment))


def _copies(facts: RunFacts) -> int:
    replicas = facts.config.max_task_replicas
    return max(facts.n_workers, 1) if replicas is None else replicas


def _killed_worker_excuses(facts: RunFacts) -> tuple[tuple[TaskId, str], ...]:
    limit = facts.config.allowed_failures
    return tuple(
        (task_id, (
            f"a step was interrupted {count} times > allowed-failures={limit}, "
            "so Dask raised KilledWorker"
        ))
        for task_id, count in facts.interrupted_per_step.items()
        if count > limit
    )
