"""The expected-outcome model: what a configuration MUST do under the faults a run suffered.

The checker finds what happened; this module says what was allowed to happen. For one
run (its configuration and the faults in its history) the model answers either

- "must-deliver-all": every expected output must be delivered, except for the tasks
  listed in `excused` (each with why), which may instead be *reported* failed; or
- "may-fail-loudly": any task may be reported failed.

Silent loss is never allowed, whatever the answer: that judgement is the checker's.

The model is an ordered tuple of small rules (`OutcomeRule`); the first that applies
decides, like a policy chain. Swap, reorder or add rules by building another
`OutcomeModel`. Every rule is sound rather than tight: when the history cannot prove
that a configuration must have survived, the rule says "may fail loudly" and says why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

TaskId = str | int
Outcome = Literal["must-deliver-all", "may-fail-loudly"]

# Faults that take a worker's memory with them, as the scheduler sees it. `retire`
# moves data off before the worker leaves. A kind we do not know counts as a loss, so
# an unknown fault can only make the model more lenient, never raise a false alarm.
GRACEFUL_FAULT_KINDS = frozenset({"retire"})

# Dask's default `distributed.scheduler.allowed-failures`: a task whose worker dies
# while it runs is rescheduled until it has been "suspicious" more than this many times.
DASK_DEFAULT_ALLOWED_FAILURES = 3


# ---------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class ExpectedOutcome:
    """What a run must do, with the rule that decided and why."""

    outcome: Outcome
    rule: str
    why: str
    # Tasks that may be reported failed although the rest must be delivered.
    excused: tuple[tuple[TaskId, str], ...] = ()

    @property
    def must_deliver_all(self) -> bool:
        return self.outcome == "must-deliver-all"

    def failure_excuse(self, task_id: TaskId) -> str | None:
        """Why `task_id` may be reported failed, or None when it must be delivered."""
        if not self.must_deliver_all:
            return self.why
        for excused_id, why in self.excused:
            if excused_id == task_id and type(excused_id) is type(task_id):
                return why
        return None

    def explain(self) -> str:
        text = f"{self.outcome} ({self.rule}): {self.why}"
        if self.excused:
            text += f"; {len(self.excused)} task(s) may fail loudly"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "rule": self.rule,
            "why": self.why,
            "excused": [{"task_id": task_id, "why": why} for task_id, why in self.excused],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectedOutcome:
        return cls(
            outcome=data["outcome"],
            rule=data["rule"],
            why=data["why"],
            excused=tuple((item["task_id"], item["why"]) for item in data.get("excused", ())),
        )


@dataclass(frozen=True)
class RunConfiguration:
    """The settings of a run that decide its expected outcome, read from `run-start`."""

    target: str
    max_task_replicas: int | None = 0
    task_registry: str | None = None
    scatter: bool = True
    max_attempts: int = 5
    allowed_failures: int = DASK_DEFAULT_ALLOWED_FAILURES
    replica_guard: str = "policy"

    @classmethod
    def from_run_start(cls, event: Mapping[str, Any]) -> RunConfiguration:
        config = event.get("config") or {}
        allowed = config.get("allowed_failures", config.get("allowed-failures"))
        return cls(
            target=str(event.get("target", "unknown")),
            max_task_replicas=config.get("max_task_replicas", 0),
            task_registry=config.get("task_registry"),
            scatter=bool(config.get("scatter", True)),
            max_attempts=int(config.get("max_attempts", 5)),
            allowed_failures=DASK_DEFAULT_ALLOWED_FAILURES if allowed is None else int(allowed),
            replica_guard=str(config.get("replica_guard", "policy")),
        )

    @property
    def label(self) -> str:
        """A short, stable name for tables: 'resilience r=2 reg=disk scatter'.

        max_attempts shows only when it is not the library's default of 5.
        """
        replicas = "all" if self.max_task_replicas is None else str(self.max_task_replicas)
        registry = self.task_registry or "none"
        inputs = "scatter" if self.scatter else "inline"
        label = f"{self.target} r={replicas} reg={registry} {inputs}"
        if self.max_attempts != 5:
            label += f" attempts={self.max_attempts}"
        return label


@dataclass(frozen=True)
class Fault:
    """One injected fault, as the `fault` event recorded it."""

    seq: int
    fault_id: str
    kind: str
    worker: str | None
    fired_at: float
    landed_at: float
    noticed_at: float | None

    @property
    def loses_data(self) -> bool:
        return self.kind not in GRACEFUL_FAULT_KINDS


@dataclass(frozen=True)
class RunFacts:
    """What the model needs from a history: configuration, faults, and per-task evidence."""

    config: RunConfiguration
    n_workers: int
    faults: tuple[Fault, ...]
    # Per task: the most executions of one step cut short by a worker's death (`info`).
    interrupted_per_step: Mapping[TaskId, int] = field(default_factory=dict)
    # Per task: `info` executions on workers no harness fault touched (e.g. a poison
    # task that kills its own worker), and executions whose protocol raised (`fail`).
    unexplained_deaths: Mapping[TaskId, int] = field(default_factory=dict)
    protocol_errors: Mapping[TaskId, int] = field(default_factory=dict)
    # The `seq` of each `task-failed` event, to count the faults that came before it.
    failed_at_seq: Mapping[TaskId, int] = field(default_factory=dict)

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> RunFacts:
        return _facts_from_events(events)

    @property
    def losses(self) -> tuple[Fault, ...]:
        return tuple(fault for fault in self.faults if fault.loses_data)

    @property
    def copy_losses(self) -> tuple[Fault, ...]:
        """Faults that cost an input a *copy*: all of them. A retire moves unique data
        off, but RetireWorker drops its replica of anything held elsewhere too, so a
        replicated input has one copy fewer until the library re-replicates."""
        return self.faults

    def faults_before(self, seq: int) -> int:
        return sum(1 for fault in self.faults if fault.seq < seq)


class OutcomeRule(Protocol):
    """One rule of the model: when it applies, and what it then expects.

    `applies` looks only at the configuration and faults; `expect` must return an
    explained outcome. Rules are tried in order and the first that applies decides.
    """

    @property
    def name(self) -> str: ...

    def applies(self, facts: RunFacts) -> bool: ...

    def expect(self, facts: RunFacts) -> ExpectedOutcome: ...


@dataclass(frozen=True)
class OutcomeModel:
    """An ordered chain of rules. `expect` adds the excuse every rule shares: a task whose
    protocol raised may be reported failed (retries are for that; then it must fail loudly).
    """

    rules: tuple[OutcomeRule, ...]

    def expect(self, facts: RunFacts | Iterable[Mapping[str, Any]]) -> ExpectedOutcome:
        if not isinstance(facts, RunFacts):
            facts = RunFacts.from_events(facts)
        for rule in self.rules:
            if rule.applies(facts):
                return _with_protocol_error_excuses(rule.expect(facts), facts)
        names = ", ".join(rule.name for rule in self.rules)
        raise ValueError(
            f"no outcome rule applies to {facts.config.label!r} (rules tried: {names}); "
            "end the model with a catch-all rule such as NothingProtects()."
        )


# ---------------------------------------------------------------------------- the rules


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
        for task_id, seq in facts.failed_at_seq.items():
            budget = (
                facts.faults_before(seq)
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
        count = self.count_holder_losses or count_distinct_workers_lost
        lost = count(facts)
        if lost >= copies:
            why = (
                f"{lost} holder loss(es) >= {copies} copies (max_task_replicas="
                f"{facts.config.max_task_replicas!r}), so an input may have lost every "
                "holder, and without a registry that task can only fail"
            )
            return ExpectedOutcome("may-fail-loudly", self.name, why)
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
            "losses are allowed, but only as reported failures"
        )
        return ExpectedOutcome("may-fail-loudly", self.name, why)


DEFAULT_MODEL = OutcomeModel(
    rules=(
        NoFaults(),
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
    """Distinct workers that lost their copies during the run (retired ones included).

    Sound with or without re-replication: n holders of one input are n distinct workers,
    so an input cannot lose all of them unless at least n distinct workers were lost.
    """
    return len({fault.worker or fault.fault_id for fault in facts.copy_losses})


def count_overlapping_losses(grace: float = 5.0) -> Callable[[RunFacts], int]:
    """A counter for libraries that re-replicate after a holder dies.

    A loss is "open" from landing until `grace` seconds after the scheduler noticed it
    (forever when never noticed); the count is the most losses open at one instant.
    The grace must cover the re-replication delay (the AMM runs every 2 s by default).
    """

    def count(facts: RunFacts) -> int:
        edges: list[tuple[float, int]] = []
        for fault in facts.copy_losses:
            closes = float("inf") if fault.noticed_at is None else fault.noticed_at + grace
            edges += [(fault.landed_at, 1), (closes, -1)]
        open_now = most = 0
        for _, step in sorted(edges, key=lambda edge: (edge[0], -edge[1])):
            open_now += step
            most = max(most, open_now)
        return most

    return count


# ---------------------------------------------------------------------------- internals


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


def _with_protocol_error_excuses(
    expected: ExpectedOutcome, facts: RunFacts
) -> ExpectedOutcome:
    if not expected.must_deliver_all or not facts.protocol_errors:
        return expected
    already = {(type(task_id), task_id) for task_id, _ in expected.excused}
    extra = tuple(
        (task_id, f"its protocol raised {count} time(s)")
        for task_id, count in facts.protocol_errors.items()
        if (type(task_id), task_id) not in already
    )
    return ExpectedOutcome(
        expected.outcome, expected.rule, expected.why, expected.excused + extra
    )


def _facts_from_events(events: Iterable[Mapping[str, Any]]) -> RunFacts:
    run_start: Mapping[str, Any] | None = None
    faults: list[Fault] = []
    executions: dict[Any, tuple[TaskId, tuple[int, ...], int, str | None]] = {}
    interrupted: Counter[tuple[TaskId, tuple[int, ...], int]] = Counter()
    protocol_errors: Counter[TaskId] = Counter()
    deaths_by_task: dict[TaskId, list[str | None]] = {}
    failed_at_seq: dict[TaskId, int] = {}
    for event in events:
        kind = event.get("type")
        if kind == "run-start":
            run_start = event
        elif kind == "fault" and event.get("fired_at") is not None:
            faults.append(_fault(event))
        elif kind == "invoke":
            executions[event["execution"]] = (
                event["task_id"], tuple(event["index"]), event["step"], event.get("worker"),
            )
        elif kind in ("info", "fail") and event.get("execution") in executions:
            task_id, index, step, worker = executions[event["execution"]]
            if kind == "fail":
                protocol_errors[task_id] += 1
            else:
                interrupted[(task_id, index, step)] += 1
                deaths_by_task.setdefault(task_id, []).append(worker)
        elif kind == "task-failed":
            failed_at_seq.setdefault(event["task_id"], event["seq"])
    if run_start is None:
        raise ValueError(
            "the history has no run-start event, so its configuration is unknown; "
            "pass the complete history.jsonl of one run (run-start is its first line)."
        )
    faulted_workers = {fault.worker for fault in faults}
    per_step: dict[TaskId, int] = {}
    for (task_id, _, _), count in interrupted.items():
        per_step[task_id] = max(per_step.get(task_id, 0), count)
    unexplained = {
        task_id: sum(1 for worker in workers if worker not in faulted_workers)
        for task_id, workers in deaths_by_task.items()
    }
    return RunFacts(
        config=RunConfiguration.from_run_start(run_start),
        n_workers=len(run_start.get("workers") or ()),
        faults=tuple(faults),
        interrupted_per_step=per_step,
        unexplained_deaths={k: v for k, v in unexplained.items() if v},
        protocol_errors=dict(protocol_errors),
        failed_at_seq=failed_at_seq,
    )


def _fault(event: Mapping[str, Any]) -> Fault:
    fired = float(event["fired_at"])
    landed = event.get("landed_at")
    noticed = event.get("noticed_at")
    return Fault(
        seq=int(event["seq"]),
        fault_id=str(event.get("fault_id", event["seq"])),
        kind=str(event.get("kind", "unknown")),
        worker=event.get("worker"),
        fired_at=fired,
        # A fault whose landing was not confirmed may still have landed: count it then.
        landed_at=fired if landed is None else float(landed),
        noticed_at=None if noticed is None else float(noticed),
    )

