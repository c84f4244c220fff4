"""`check_preemption_safety`: may these protocols be restarted after a worker is preempted?

    report = check_preemption_safety([fold, relax], tasks=[{"task_id": i, "seed": i}
                                                            for i in range(3)], input=pose)
    report.safe, report.findings, print(report.explain())

The chain runs step by step, as the library runs it: step k's outputs are step k+1's
inputs, and `input` is step 0's. Two phases:

1. Every step of every task, from its input: two calls in a row on one worker and one
   call on another, at the same time, with a snapshot of the watched paths before and
   after. The first call's outputs feed the next step. (`chaos.testing.judge` says what
   the three calls and the snapshots mean.)
2. `kills` of those steps (spread over the steps first, then over the tasks, chosen by
   `seed`) run once more, and their worker is SIGKILLed part-way. "Part-way" is aimed
   at the protocol itself: the attempt reports its start from the worker, and the kill
   goes out a seeded fraction (25-75%) of the step's uninterrupted duration later. A
   fixed delay from submission would land in Dask's queue or in unpickling for short
   steps, and a marker file would only work on one machine. A step that ends before
   the kill lands is noted, not judged, and killed again on a new attempt (at most
   KILL_TRIES in all: on a loaded machine a kill can reach a short step late). The
   watched paths are snapshotted once the worker is gone; then the step is rerun on a
   live worker, and its result compared with the uninterrupted one.

Protocols run with the working directory of the caller (`os.getcwd()`), which is
always watched, whatever directory their worker was started in.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.testing.attempts import AttemptResult, AttemptSpec, CallResult
from chaos.testing.errors import CheckError
from chaos.testing.findings import Finding, KillRecord, SafetyReport
from chaos.testing.judge import Compare, StepOf, judge_kill, judge_runs, judge_side_effects
from chaos.testing.shipping import dumps, importable, modules_of, same_module_everywhere
from chaos.testing.snapshots import DirectoryWatch, changes
from chaos.testing.workers import REPLACEMENT_TIMEOUT, WorkerPool, dask_quiet, own_client

if TYPE_CHECKING:
    from distributed import Client

Protocol = Callable[..., Any]
KILL_WINDOW = (0.25, 0.75)  # a kill lands at this fraction of the step's duration
KILL_TRIES = 3  # kills of one step, on new attempts, while the step ends before its kill


def check_preemption_safety(
    protocols: Protocol | Sequence[Protocol],
    tasks: Iterable[Mapping[str, Any]],
    input: Any = None,  # the library's name for step 0's payload
    *,
    client: Client | None = None,
    watch: Iterable[str | os.PathLike[str]] = (),
    kills: int = 3,
    seed: int = 0,
    compare: Compare | None = None,
    timeout: float = 60.0,
) -> SafetyReport:
    """Run the chain `protocols` on `tasks` the way a preempted cluster would, and report
    what would go wrong on a restart.

    `client`: a cluster of at least 2 nanny workers on this machine; None starts (and
    always stops) a LocalCluster of 2 workers. `watch`: paths watched besides the
    working directory. `kills`: how many steps are SIGKILLed part-way (0: none).
    `compare(a, b) -> bool` judges two outputs equal (default: equal pickled bytes).
    `timeout`: seconds one attempt may take.
    """
    chain = _chain(protocols)
    task_list = _tasks(tasks)
    _check_options(kills, seed, compare, timeout)
    watched = DirectoryWatch([Path.cwd(), *watch])
    with dask_quiet():
        if client is None:
            with own_client() as owned:
                return _Check(chain, task_list, input, owned, watched, kills, seed, compare,
                              timeout).run()
        return _Check(chain, task_list, input, client, watched, kills, seed, compare,
                      timeout).run()


def assert_preemption_safe(
    protocols: Protocol | Sequence[Protocol],
    tasks: Iterable[Mapping[str, Any]],
    input: Any = None,
    **options: Any,
) -> SafetyReport:
    """`check_preemption_safety`, raising AssertionError with the explanation when unsafe."""
    __tracebackhide__ = True
    report = check_preemption_safety(protocols, tasks, input, **options)
    if not report.safe:
        raise AssertionError(report.explain())
    return report


# ---------------------------------------------------------------------------- the check


@dataclass
class _Item:
    """One step of one task on one input, and what its uninterrupted run established."""

    where: StepOf
    position: int  # the task's position in the task list
    payload: bytes
    reference: CallResult | None = None  # the first call of the first run: the expected result
    changed: set[str] = field(default_factory=set)  # paths an uninterrupted run changed
    clean: bool = False  # deterministic and stateless: a rerun must give the reference


class _Check:
    def __init__(self, chain: list[Protocol], tasks: list[tuple[Any, dict[str, Any]]],
                 input: Any, client: Client, watched: DirectoryWatch, kills: int, seed: int,
                 compare: Compare | None, timeout: float) -> None:
        from resilience.worker_step import protocol_name

        self.chain = chain
        self.names = [protocol_name(protocol) for protocol in chain]
        self.tasks = tasks
        self.input = input
        self.client = client
        self.watched = watched
        self.n_kills = kills
        self.seed = seed
        self.rng = random.Random(seed)
        self.compare = compare
        self.timeout = timeout
        self.cwd = Path.cwd().resolve()
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.kills: list[KillRecord] = []
        self.items: list[_Item] = []
        self.shipped: list[bytes] = []  # the protocols, pickled, up to the first that is not
        self.kwargs: dict[int, bytes] = {}  # each task's kwargs, pickled, by position
        self.calls = 0

    def run(self) -> SafetyReport:
        started = time.perf_counter()
        pool = WorkerPool(self.client, need_nannies=self.n_kills > 0)
        try:
            by_value = self._by_value(pool)
            self._ship(by_value)
            items = self._first_items(by_value)
            for _ in self.shipped:
                items = [child for item in items for child in self._examine(pool, item)]
            self._kill_some(pool)
        finally:
            pool.close()
        return SafetyReport(
            findings=self.findings, seed=self.seed, protocols=tuple(self.names),
            task_ids=tuple(task_id for task_id, _ in self.tasks),
            watched=tuple(_shown_root(root, self.cwd) for root in self.watched.roots),
            calls=self.calls, kills=tuple(self.kills), notes=tuple(self.notes),
            seconds=time.perf_counter() - started,
        )

    # ------------------------------------------------------------------ shipping

    def _by_value(self, pool: WorkerPool) -> set[str]:
        """Modules of the protocols that the workers cannot import: pickled by value."""
        names = modules_of(self.chain)
        if not names:
            return set()
        found = [pool.ask(worker, importable, names) for worker in pool.workers()]
        missing = {name for name in names
                   if not same_module_everywhere(name, (where.get(name) for where in found))}
        if missing:
            self.notes.append(f"{', '.join(sorted(missing))}: not imported from this file on "
                              "every worker, so its protocols were pickled by value")
        return missing

    def _first_items(self, by_value: set[str]) -> list[_Item]:
        try:
            payload = dumps(self.input, by_value)
        except Exception as error:
            self._add(Finding("not-picklable", None, 0, f"the input ({type(self.input).__name__}) "
                              f"cannot be pickled: {type(error).__name__}: {error}",
                              self.names[0]))
            return []
        items = []
        for position, (task_id, kwargs) in enumerate(self.tasks):
            try:
                self.kwargs[position] = dumps(kwargs, by_value)
            except Exception as error:
                self._add(Finding("not-picklable", task_id, 0, f"the task's kwargs cannot be "
                                  f"pickled: {type(error).__name__}: {error}", self.names[0]))
                continue
            items.append(_Item(StepOf(self.names[0], task_id, 0), position, payload))
        return items

    def _ship(self, by_value: set[str]) -> None:
        """Pickle the protocols; the chain is checked up to the first that does not pickle."""
        for step, protocol in enumerate(self.chain):
            try:
                self.shipped.append(dumps(protocol, by_value))
            except Exception as error:
                self._add(Finding("not-picklable", None, step, f"the protocol cannot be "
                                  f"pickled: {type(error).__name__}: {error}", self.names[step]))
                return

    def _spec(self, item: _Item, calls: int = 1, topic: str | None = None) -> AttemptSpec:
        return AttemptSpec(uuid.uuid4().hex[:16], self.shipped[item.where.step], item.payload,
                           self.kwargs[item.position], os.fspath(self.cwd), calls, topic)

    # ------------------------------------------------------------------ phase 1

    def _examine(self, pool: WorkerPool, item: _Item) -> list[_Item]:
        """Three calls from the item's input, two in a row on one worker and one on another;
        returns the next step's items."""
        # Two workers are up, unless a hung step's worker was just killed: then it waits.
        first, other = self.rng.sample(sorted(pool.wait_for(2, REPLACEMENT_TIMEOUT)), 2)
        before = self.watched.snapshot()
        # One after the other: two attempts of one step at once may trip over each other
        # (a scratch file named after the task), which is not what a restart does.
        a = pool.results([pool.submit(self._spec(item, calls=2), first)], self.timeout)[0]
        b = pool.results([pool.submit(self._spec(item), other)], self.timeout)[0]
        found = changes(before, self.watched.snapshot())
        self.calls += sum(len(r.calls) for r in (a, b) if isinstance(r, AttemptResult))
        verdicts = judge_runs(item.where, a, b, self.compare)
        verdicts += judge_side_effects(item.where, found, self.cwd)
        for finding in verdicts:
            self._add(finding)
        if not isinstance(a, AttemptResult) or not a.calls or a.calls[0].outputs is None:
            return []  # no result to carry on with: the chain stops here for this input
        item.reference = a.calls[0]
        item.changed = {change.path for change in found}
        item.clean = not any(f.kind in ("nondeterministic", "hidden-state", "error")
                             for f in verdicts)
        self.items.append(item)
        step = item.where.step + 1
        if step == len(self.shipped):
            return []
        outputs = item.reference.outputs or ()
        return [
            _Item(StepOf(self.names[step], item.where.task_id, step, (*item.where.index, i),
                         item.where.fanned_out or len(outputs) > 1), item.position, output)
            for i, output in enumerate(outputs)
        ]

    # ------------------------------------------------------------------ phase 2

    def _kill_some(self, pool: WorkerPool) -> None:
        for item in self._kill_targets():
            for _ in range(KILL_TRIES):
                if not self._kill_part_way(pool, item):
                    break

    def _kill_targets(self) -> list[_Item]:
        """`n_kills` items: round-robin over the steps, a seeded choice of task in each."""
        by_step: dict[int, list[_Item]] = {}
        for item in self.items:
            by_step.setdefault(item.where.step, []).append(item)
        for candidates in by_step.values():
            self.rng.shuffle(candidates)
        chosen: list[_Item] = []
        while len(chosen) < self.n_kills and any(by_step.values()):
            for step in sorted(by_step):
                if by_step[step] and len(chosen) < self.n_kills:
                    chosen.append(by_step[step].pop())
        if len(chosen) < self.n_kills:
            self.notes.append(f"{len(chosen)} of the {self.n_kills} kills asked for were made: "
                              f"only {len(self.items)} steps completed")
        return chosen

    def _kill_part_way(self, pool: WorkerPool, item: _Item) -> bool:
        """Kill `item`'s step part-way and judge what it left; True when the step ended
        before the kill could land (worth another try), else False."""
        assert item.reference is not None
        alive = pool.wait_for(1, REPLACEMENT_TIMEOUT)
        worker = self.rng.choice(list(alive.values()))
        fraction = self.rng.uniform(*KILL_WINDOW)
        duration = item.reference.seconds
        spec = self._spec(item, topic=pool.topic)
        before = self.watched.snapshot()
        future = pool.submit(spec, worker.address)
        where = item.where
        if not pool.started(spec.attempt_id, future, self.timeout):
            result = pool.results([future], 1.0)[0]
            self.notes.append(f"task {where.task_id!r} step {where.step}: the attempt to kill "
                              f"never started ({result if isinstance(result, str) else 'ok'})")
            return False
        self.calls += 1
        pool.aim(worker)
        delay = max(0.0, fraction * duration - pool.running_for(spec.attempt_id))
        if pool.ended(spec.attempt_id, delay):
            pool.results([future], self.timeout)
            self.kills.append(KillRecord(where.task_id, where.step, worker.address, fraction,
                                         False, f"the step ended ({duration * 1000:.0f} ms) "
                                         "before the kill"))
            return True
        error = pool.kill(worker)
        landed = error is None and not pool.ended(spec.attempt_id)
        future.cancel()
        killed_at = f"{fraction:.0%} into its {_seconds(duration)} run (worker {worker.address})"
        if error is not None:
            self.notes.append(f"task {where.task_id!r} step {where.step}: the kill was not "
                              f"confirmed ({error})")
        self.kills.append(KillRecord(where.task_id, where.step, worker.address, fraction,
                                     landed, error or ""))
        if error is None and not landed:
            return True  # the step ended first: noted, not judged (as above)
        leftovers = [change for change in changes(before, self.watched.snapshot())
                     if change.path not in item.changed]
        # On a worker that survived the kill if there is one: it is warm (a replacement's
        # first task pays for its imports).
        now = pool.wait_for(1, REPLACEMENT_TIMEOUT)
        survivor = next((address for address in now if address in alive), next(iter(now)))
        rerun = pool.results([pool.submit(self._spec(item), survivor)], self.timeout)[0]
        self.calls += 1
        for finding in judge_kill(where, leftovers, killed_at,
                                  rerun if item.clean else None, item.reference,
                                  self.compare, self.cwd):
            self._add(finding)
        return False

    def _add(self, finding: Finding) -> None:
        self.findings.append(finding)


# ---------------------------------------------------------------------------- arguments


def _chain(protocols: Protocol | Sequence[Protocol]) -> list[Protocol]:
    chain = [protocols] if callable(protocols) else list(protocols)
    if not chain:
        raise CheckError("protocols is empty: pass a protocol, or a list of them (a chain).")
    for position, protocol in enumerate(chain):
        if not callable(protocol):
            raise CheckError(f"protocols[{position}] is {type(protocol).__name__} {protocol!r}, "
                             "not a callable: pass functions protocol(payload, **task_kwargs).")
    return chain


def _tasks(tasks: Iterable[Mapping[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
    """(task_id, kwargs) per task, ids and rules as the library's (resilience.tasks)."""
    from resilience import ConfigError
    from resilience.tasks import task_specs

    try:
        specs = list(task_specs(tasks))
    except ConfigError as error:
        raise CheckError(str(error)) from None
    if not specs:
        raise CheckError("tasks is empty: pass a few task dicts, e.g. [{'task_id': 0, "
                         "'seed': 0}, ...] (each is the **kwargs of every protocol).")
    return [(spec.task_id, dict(spec.kwargs)) for spec in specs]


def _check_options(kills: int, seed: int, compare: Compare | None, timeout: float) -> None:
    if isinstance(kills, bool) or not isinstance(kills, int) or kills < 0:
        raise CheckError(f"kills={kills!r}: use an int >= 0 (the steps SIGKILLed part-way; "
                         "0 skips the kill phase).")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CheckError(f"seed={seed!r}: use an int (it picks workers, kills and their timing).")
    if compare is not None and not callable(compare):
        raise CheckError(f"compare={compare!r}: pass a function compare(a, b) -> bool, or None "
                         "to compare pickled bytes.")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise CheckError(f"timeout={timeout!r}: use a number of seconds > 0 (the bound on one "
                         "attempt of one step).")


def _shown_root(root: Path, cwd: Path) -> str:
    return f"{root} (the working directory)" if root == cwd else os.fspath(root)


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
