"""The expected-outcome model: what a configuration MUST do under the faults a run suffered.

The checker finds what happened; the model says what was allowed to happen. For one
run (its configuration and the faults in its history) the model answers either

- "must-deliver-all": every expected output must be delivered, except for the tasks
  listed in `excused` (each with why), which may instead be *reported* failed; or
- "may-fail-loudly": any task may be reported failed.

Silent loss is never allowed, whatever the answer: that judgement is the checker's.

This module is the mechanism: the facts a history gives (`RunFacts`), the answer
(`ExpectedOutcome`), and `OutcomeModel`, an ordered chain of small rules of which the
first that applies decides. The rules themselves (the policy) are in `chaos.judge.rules`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from chaos.history import WorkerProcess, same_process
from chaos.spec import TaskId

Outcome = Literal["must-deliver-all", "may-fail-loudly"]

# Faults that take a worker's memory with them, as the scheduler sees it. `retire`
# moves data off before the worker leaves. A kind we do not know counts as a loss, so
# an unknown fault can only make the model more lenient, never raise a false alarm.
GRACEFUL_FAULT_KINDS = frozenset({"retire"})

# Dask's default `distributed.scheduler.allowed-failures`: a task whose worker dies
# while it runs is rescheduled until it has been "suspicious" more than this many times.
DASK_DEFAULT_ALLOWED_FAILURES = 3


@dataclass(frozen=True)
class ExpectedOutcome:
    """What a run must do, with the rule that decided and why."""

    outcome: Outcome
    rule: str
    why: str
    # Tasks that may be reported failed although the rest must be delivered.
    excused: tuple[tuple[TaskId, str], ...] = ()
    # may-fail-loudly, but only the tasks in `excused` (those the faults could have
    # reached): a loud failure the faults cannot explain is a violation too.
    bounded: bool = False

    @property
    def must_deliver_all(self) -> bool:
        return self.outcome == "must-deliver-all"

    def failure_excuse(self, task_id: TaskId) -> str | None:
        """Why `task_id` may be reported failed, or None when it must be delivered."""
        if not self.must_deliver_all and not self.bounded:
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
            "bounded": self.bounded,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectedOutcome:
        return cls(
            outcome=data["outcome"],
            rule=data["rule"],
            why=data["why"],
            excused=tuple((item["task_id"], item["why"]) for item in data.get("excused", ())),
            bounded=bool(data.get("bounded", False)),
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
    step_timeout: float | None = None
    notice: float | None = None  # the preemption-notice plugin's seconds; None: off

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
            step_timeout=config.get("step_timeout"),
            notice=config.get("notice"),
        )

    @property
    def label(self) -> str:
        """A short, stable name for tables: 'resilience r=2 reg=disk scatter'.

        max_attempts shows only when it is not the library's default of 5, step_timeout
        and notice only when set: labels name configurations apart (summaries group by
        them).
        """
        replicas = "all" if self.max_task_replicas is None else str(self.max_task_replicas)
        registry = self.task_registry or "none"
        inputs = "scatter" if self.scatter else "inline"
        label = f"{self.target} r={replicas} reg={registry} {inputs}"
        if self.max_attempts != 5:
            label += f" attempts={self.max_attempts}"
        if self.step_timeout is not None:
            label += f" timeout={self.step_timeout:g}"
        if self.notice is not None:
            label += f" notice={self.notice:g}"
        return label


@dataclass(frozen=True)
class InjectedFault:
    """One injected fault, as the `fault` event recorded it."""

    seq: int
    fault_id: str
    kind: str
    worker: str | None
    fired_at: float
    landed_at: float
    noticed_at: float | None
    pid: int | None = None

    @property
    def victim(self) -> WorkerProcess | str:
        """The worker process it hit, (address, pid): a nanny may restart a worker at the
        same address as a new process. Its fault id when the history named no worker."""
        return (self.worker, self.pid) if self.worker else self.fault_id

    @property
    def loses_data(self) -> bool:
        """A retire moves data off first; a freeze the scheduler never noticed (it
        resumed within the scheduler's timeouts) lost nothing."""
        if self.kind == "freeze" and self.noticed_at is None:
            return False
        return self.kind not in GRACEFUL_FAULT_KINDS


@dataclass(frozen=True)
class RunFacts:
    """What the model needs from a history: configuration, faults, and per-task evidence."""

    config: RunConfiguration
    n_workers: int
    faults: tuple[InjectedFault, ...]
    # Per task: the most executions of one step cut short by a worker's death (`info`).
    interrupted_per_step: Mapping[TaskId, int] = field(default_factory=dict)
    # Per task: `info` executions on workers no harness fault touched (e.g. a poison
    # task that kills its own worker), and executions whose protocol raised (`fail`).
    unexplained_deaths: Mapping[TaskId, int] = field(default_factory=dict)
    protocol_errors: Mapping[TaskId, int] = field(default_factory=dict)
    # The `seq` of each `task-failed` event, to count the faults that came before it.
    failed_at_seq: Mapping[TaskId, int] = field(default_factory=dict)
    failed_at_time: Mapping[TaskId, float] = field(default_factory=dict)
    # Per task: the events before its failure that a fault could explain it by (an
    # attempt lost, killed, timed out or interrupted; a wait for workers), counted.
    fault_evidence: Mapping[TaskId, int] = field(default_factory=dict)

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> RunFacts:
        return _facts_from_events(events)

    @property
    def losses(self) -> tuple[InjectedFault, ...]:
        return tuple(fault for fault in self.faults if fault.loses_data)

    @property
    def copy_losses(self) -> tuple[InjectedFault, ...]:
        """Faults that cost an input a *copy*: all of them. A retire moves unique data
        off, but RetireWorker drops its replica of anything held elsewhere too, so a
        replicated input has one copy fewer until the library re-replicates."""
        return self.faults

    def faults_before(self, task_id: TaskId) -> int:
        """Faults fired before `task_id` was reported failed. By time, not by seq:
        a fault's event is written once its effect is settled (the scheduler's notice),
        which may come after the failures it caused."""
        failed_at = self.failed_at_time.get(task_id, float("inf"))
        return sum(1 for fault in self.faults if fault.fired_at <= failed_at)

    def explained_failures(self, why: str) -> tuple[tuple[TaskId, str], ...]:
        """The reported failures a landed fault could explain: the task has fault
        evidence (`fault_evidence`), and a data-losing fault was fired before it failed.
        Fired, not landed: a sigterm's worker leaves the scheduler (and takes its data)
        before its process is seen gone, so failures may precede the landing."""
        first_loss = min((f.fired_at for f in self.losses), default=None)
        return tuple(
            (task_id, why) for task_id, failed_at in self.failed_at_time.items()
            if self.fault_evidence.get(task_id, 0) or self.protocol_errors.get(task_id, 0)
            if first_loss is not None and first_loss <= failed_at
        )


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


# ---------------------------------------------------------------------------- internals


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
    faults: list[InjectedFault] = []
    executions: dict[Any, tuple[TaskId, tuple[int, ...], int, WorkerProcess]] = {}
    interrupted: Counter[tuple[TaskId, tuple[int, ...], int]] = Counter()
    protocol_errors: Counter[TaskId] = Counter()
    deaths_by_task: dict[TaskId, list[WorkerProcess]] = {}
    failed_at_seq: dict[TaskId, int] = {}
    failed_at_time: dict[TaskId, float] = {}
    evidence: Counter[TaskId] = Counter()
    waited_for_workers = False
    for event in events:
        kind = event.get("type")
        if kind == "run-start":
            run_start = event
        elif kind == "fault" and event.get("fired_at") is not None and (
                event.get("landed_at") is not None or event.get("noticed_at") is not None):
            faults.append(_fault(event))  # a fault that did not land counts for nothing
        elif kind == "step-error" and event.get("cause") in _FAULT_CAUSES:
            evidence[event["task_id"]] += 1
        elif kind == "waiting-for-workers":
            waited_for_workers = True
        elif kind == "invoke":
            executions[event["execution"]] = (
                event["task_id"], tuple(event["index"]), event["step"],
                (event.get("worker"), event.get("pid")),
            )
        elif kind in ("info", "fail") and event.get("execution") in executions:
            task_id, index, step, worker = executions[event["execution"]]
            if kind == "fail":
                protocol_errors[task_id] += 1
            else:
                interrupted[(task_id, index, step)] += 1
                deaths_by_task.setdefault(task_id, []).append(worker)
                evidence[task_id] += 1
        elif kind == "task-failed":
            failed_at_seq.setdefault(event["task_id"], event["seq"])
            failed_at_time.setdefault(event["task_id"], float(event.get("time", 0.0)))
            if waited_for_workers:  # the cluster had no worker: every task may fail
                evidence[event["task_id"]] += 1
    if run_start is None:
        raise ValueError(
            "the history has no run-start event, so its configuration is unknown; "
            "pass the complete history.jsonl of one run (run-start is its first line)."
        )
    faulted_workers = [(fault.worker, fault.pid) for fault in faults]
    per_step: dict[TaskId, int] = {}
    for (task_id, _, _), count in interrupted.items():
        per_step[task_id] = max(per_step.get(task_id, 0), count)
    unexplained = {
        task_id: sum(1 for worker in workers
                     if not any(same_process(worker, hit) for hit in faulted_workers))
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
        failed_at_time=failed_at_time,
        fault_evidence=dict(evidence),
    )


# Causes of a failed attempt that a fault can explain (a protocol error is its own).
_FAULT_CAUSES = frozenset({"lost-input", "killed-worker", "step-timeout", "no-workers"})


def _fault(event: Mapping[str, Any]) -> InjectedFault:
    fired = float(event["fired_at"])
    landed = event.get("landed_at")
    noticed = event.get("noticed_at")
    return InjectedFault(
        seq=int(event["seq"]),
        fault_id=str(event.get("fault_id", event["seq"])),
        kind=str(event.get("kind", "unknown")),
        worker=event.get("worker"),
        pid=event.get("pid"),
        fired_at=fired,
        # A fault whose landing was not confirmed may still have landed: count it then.
        landed_at=fired if landed is None else float(landed),
        noticed_at=None if noticed is None else float(noticed),
    )
