"""Synthetic histories, to preview and test the report without a cluster.

A tiny discrete-event simulation of a protocol chain on a few one-thread workers, with
workers killed at random times and each configuration recovering the way its design
says (registry resubmits; inline inputs and surviving replicas are rescheduled by Dask;
otherwise the task is reported failed, or silently dropped by `dask-raw`). A `flaw`
plants one bug, so reports and checkers have failing runs to show.

It writes the event format of docs/history.md. It is no evidence about any real system.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chaos.history import HISTORY_VERSION

Flaw = Literal["duplicate", "corrupt", "silent-drop", "unexpected", "hang"]
FLAWS: tuple[Flaw, ...] = ("duplicate", "corrupt", "silent-drop", "unexpected", "hang")

SIMULATED_KIND = "simulated"  # not chaos.workload.synthetic' "synthetic": these never ran
_START = 1_700_000_000.0
_RESTART_DELAY = 0.4  # a nanny replaces a killed worker in about this long


@dataclass(frozen=True)
class SyntheticWorkload:
    n_tasks: int = 8
    n_steps: int = 2
    decoys: int = 2  # outputs of step 0; later steps return one payload
    step_seconds: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        return {"kind": SIMULATED_KIND, **vars(self)}


def synthetic_oracle(run_start: Mapping[str, Any]) -> dict[tuple[Any, tuple[int, ...]], str]:
    """The oracle of a simulated run, from its run-start event (an `OracleFor`)."""
    workload = run_start["workload"]
    if workload.get("kind") != SIMULATED_KIND:
        raise ValueError(
            f"workload kind {workload.get('kind')!r} is not {SIMULATED_KIND!r}: this oracle "
            "only knows simulated runs; use reports.workload_oracle for the harness's runs."
        )
    shape = SyntheticWorkload(**{k: v for k, v in workload.items() if k != "kind"})
    tails = [(i,) + (0,) * (shape.n_steps - 1) for i in range(shape.decoys)]
    return {
        (task_id, tail): _digest(task_id, tail)
        for task_id in range(shape.n_tasks)
        for tail in tails
    }


def synthetic_history(
    config: Mapping[str, Any],
    *,
    target: str = "resilience",
    seed: int = 0,
    faults: int = 1,
    workers: int = 2,
    workload: SyntheticWorkload | None = None,
    flaw: Flaw | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """One run's history: `faults` sigkills at random times on `workers` workers."""
    simulation = _Simulation(
        config=dict(config), target=target, seed=seed, n_faults=faults,
        n_workers=workers, workload=workload or SyntheticWorkload(), flaw=flaw,
        run_id=run_id or _run_id(target, config, faults, seed, flaw),
    )
    return simulation.run()


# ---------------------------------------------------------------------------- internals


def _run_id(
    target: str, config: Mapping[str, Any], faults: int, seed: int, flaw: Flaw | None
) -> str:
    replicas = config.get("max_task_replicas", 0)
    registry = config.get("task_registry") or "none"
    inputs = "scatter" if config.get("scatter", True) else "inline"
    name = f"{target}-r{replicas}-{registry}-{inputs}-f{faults}-s{seed}"
    return f"{name}-{flaw}" if flaw else name


def _digest(task_id: Any, index: tuple[int, ...]) -> str:
    return hashlib.sha256(f"{task_id}:{index}".encode()).hexdigest()


@dataclass
class _Item:
    task_id: int
    index: tuple[int, ...]
    step: int
    attempt: int
    key: str
    holders: set[str] = field(default_factory=set)


@dataclass
class _Simulation:
    config: dict[str, Any]
    target: str
    seed: int
    n_faults: int
    n_workers: int
    workload: SyntheticWorkload
    flaw: Flaw | None
    run_id: str
    events: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)

    def run(self) -> list[dict[str, Any]]:
        rng = random.Random(self.seed)
        self.rng = rng
        self.alive = {self._address(i): 1000 + i for i in range(self.n_workers)}
        self.next_worker = self.n_workers
        self.emit(0.0, "run-start", run_id=self.run_id, target=self.target,
                  config=self.config, schedule={"faults": self.n_faults},
                  workload=self.workload.to_dict(), seed=self.seed,
                  versions={"history": HISTORY_VERSION, "synthetic": 1}, git_commit="synthetic",
                  workers=[{"address": a, "pid": p} for a, p in self.alive.items()])
        self.queue: list[_Item] = []
        self.running: dict[str, tuple[_Item, str, float, float]] = {}
        self.failed: set[int] = set()
        self.dropped = rng.randrange(self.workload.n_tasks) if self.flaw == "silent-drop" else -1
        clock: list[tuple[float, int, str, str]] = []  # (time, order, what, worker)
        for task_id in range(self.workload.n_tasks):
            self.submit(0.001 * task_id, _Item(task_id, (), 0, 1, f"t{task_id}-s0"), "new")
        estimate = (self.workload.n_tasks * (1 + self.workload.decoys)
                    * self.workload.step_seconds / self.n_workers)
        for _ in range(self.n_faults):
            heapq.heappush(clock, (rng.uniform(0.1, 0.8) * estimate, len(clock), "kill", ""))
        now, order = 0.01, 10_000
        self.dispatch(now, clock)
        while clock:
            now, _, what, worker = heapq.heappop(clock)
            if what == "done" and worker in self.running:
                self.finish(now, worker)
            elif what == "kill" and self.alive:
                self.kill(now, clock)
            elif what == "restart":
                self.alive[worker] = 2000 + order
            order += 1
            self.dispatch(now, clock)
        if self.flaw != "hang":
            self.emit(now + 0.01, "run-end", status="failed" if self.failed else "completed",
                      makespan=now + 0.01, error=None)
        return self.history()

    # -- scheduling ---------------------------------------------------------------

    def submit(self, now: float, item: _Item, reason: str) -> None:
        if self.config.get("scatter", True):
            copies = self.config.get("max_task_replicas", 0)
            copies = len(self.alive) if copies is None else max(copies, 1)
            item.holders = set(self.rng.sample(sorted(self.alive), min(copies, len(self.alive))))
        self.emit(now, "submit", task_id=item.task_id, index=list(item.index), step=item.step,
                  attempt=item.attempt, key=item.key, reason=reason)
        self.queue.append(item)

    def dispatch(self, now: float, clock: list[tuple[float, int, str, str]]) -> None:
        for worker in sorted(self.alive):
            if worker in self.running or not self.queue:
                continue
            item = self.queue.pop(0)
            if self.config.get("scatter", True) and len(item.holders) <= 1:
                item.holders = {worker}  # Dask runs a task where its only copy lives
            duration = self.workload.step_seconds * self.rng.uniform(0.7, 1.4)
            execution = f"{item.key}-a{item.attempt}-{worker[-2:]}-{now:.3f}"
            self.running[worker] = (item, execution, now, duration)
            self.emit(now, "invoke", task_id=item.task_id, index=list(item.index),
                      step=item.step, key=item.key, worker=worker, pid=self.alive[worker],
                      execution=execution)
            heapq.heappush(clock, (now + duration, len(clock) + 1, "done", worker))

    def finish(self, now: float, worker: str) -> None:
        item, execution, _, duration = self.running.pop(worker)
        n_out = self.workload.decoys if item.step == 0 else 1
        self.emit(now, "ok", execution=execution, n_outputs=n_out, duration=duration,
                  cpu=duration)
        last = item.step == self.workload.n_steps - 1
        for position in range(n_out):
            index = (*item.index, position)
            if item.task_id == self.dropped and item.step == 0:
                return  # the planted bug: the task vanishes without a word
            if not last:
                child = _Item(item.task_id, index, item.step + 1, 1,
                              f"t{item.task_id}-s{item.step + 1}-{index}")
                self.submit(now + 0.002, child, "new")
                continue
            self.deliver(now + 0.002, item, index)

    def deliver(self, now: float, item: _Item, index: tuple[int, ...]) -> None:
        digest = _digest(item.task_id, index)
        first = item.task_id == 0 and index[0] == 0
        if self.flaw == "corrupt" and first:
            digest = _digest("corrupted", index)
        self.emit(now, "deliver", task_id=item.task_id, index=list(index), digest=digest,
                  attempts=item.attempt)
        if self.flaw == "duplicate" and first:
            self.emit(now + 0.001, "deliver", task_id=item.task_id, index=list(index),
                      digest=digest, attempts=item.attempt)
        if self.flaw == "unexpected" and first:
            self.emit(now + 0.001, "deliver", task_id=item.task_id, index=[*index, 9],
                      digest=digest, attempts=item.attempt)

    # -- faults and recovery ------------------------------------------------------

    def kill(self, now: float, clock: list[tuple[float, int, str, str]]) -> None:
        busy = sorted(self.running) or sorted(self.alive)
        worker = self.rng.choice(busy)
        pid = self.alive.pop(worker)
        noticed = now + self.rng.uniform(0.02, 0.15)
        self.emit(now, "fault", fault_id=f"f{len(clock)}", kind="sigkill",
                  trigger={"kind": "time", "at": round(now, 3)}, worker=worker, pid=pid,
                  fired_at=_START + now, landed_at=_START + now + 0.001,
                  noticed_at=_START + noticed)
        replacement = self._address(self.next_worker)
        self.next_worker += 1
        heapq.heappush(clock, (now + _RESTART_DELAY, len(clock) + 1, "restart", replacement))
        casualties = []
        if worker in self.running:
            item, execution, *_ = self.running.pop(worker)
            item.holders.discard(worker)
            self.emit(noticed, "info", execution=execution, reason="worker died")
            casualties.append(item)
        for item in list(self.queue):
            item.holders.discard(worker)
            if self.config.get("scatter", True) and not item.holders:
                self.queue.remove(item)
                casualties.append(item)
        for item in casualties:
            self.recover(noticed, item)

    def recover(self, now: float, item: _Item) -> None:
        scatter = self.config.get("scatter", True)
        if self.config.get("task_registry"):
            cause = "lost-input" if scatter else "killed-worker"
            self.emit(now, "step-error", task_id=item.task_id, index=list(item.index),
                      step=item.step, attempt=item.attempt, key=item.key, cause=cause,
                      error="worker died")
            item.attempt += 1
            self.submit(now + 0.003, item, cause)
        elif not scatter or item.holders:
            self.queue.insert(0, item)  # Dask reschedules: same key, no new submit
        elif self.target == "dask-raw":
            pass  # plain Dask drops the future's error on the floor: silent loss
        else:
            self.emit(now, "step-error", task_id=item.task_id, index=list(item.index),
                      step=item.step, attempt=item.attempt, key=item.key,
                      cause="lost-input", error="scattered input lost")
            if item.task_id not in self.failed:
                self.failed.add(item.task_id)
                self.emit(now + 0.001, "task-failed", task_id=item.task_id,
                          reason="input lost with its only holder; set task_registry='disk' "
                                 "or max_task_replicas=2")

    # -- output -------------------------------------------------------------------

    def emit(self, at: float, event_type: str, **fields: Any) -> None:
        event = {"time": _START + at, "type": event_type, **fields}
        self.events.append((at, len(self.events), event))

    def history(self) -> list[dict[str, Any]]:
        ordered = sorted(self.events, key=lambda entry: (entry[0], entry[1]))
        return [{"seq": seq, **event} for seq, (_, _, event) in enumerate(ordered)]

    @staticmethod
    def _address(number: int) -> str:
        return f"tcp://127.0.0.1:{40100 + number}"
