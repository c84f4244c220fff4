"""Worker-side probes: instrumented protocols that report progress and hold at fault points.

`probed(protocols, plan)` wraps each protocol in a `ProbedProtocol`. On the worker, it
reports to the harness, through `Worker.log_event` on the plan's topic:

- `invoke` when the step starts (task_id, lineage index, Dask key, worker, pid);
- `probe` at the progress fractions the plan asks for, which the protocol reaches by
  calling `progress(f)` at the points `checkpoints()` lists (the synthetic workload
  does; any protocol may);
- `ok` or `fail` when the protocol returned or raised.

The plan also lists the *armed* points of this run's logical triggers. Only there
does a probe stop: it reports the hit and blocks until the harness releases it
(`release_hold`, run on the worker through `Client.run`) or `hold_timeout` passes. So
a fault lands while the task is exactly at that point, and every other probe costs
no round trip: reporting is fire-and-forget on the worker's batched stream.

A protocol run outside any worker process (PyRosettaCluster runs each in a subprocess
of its worker) reports through a `Client` of the plan's scheduler instead, names the
worker process by its parent pid, and holds on a `distributed.Event`. That costs a
connection per process and a round trip per report: fine for long protocols.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.probes.plan import ArmedPoint, ProbePlan
from chaos.probes.turns import take_turn
from chaos.spec import ProbePoint, TaskId


def probed(protocols: Sequence[Callable[..., Any]], plan: ProbePlan) -> list[ProbedProtocol]:
    """The protocols, each wrapped to report to and hold for the harness under `plan`."""
    return [ProbedProtocol(protocol, step, plan) for step, protocol in enumerate(protocols)]


class ProbedProtocol:
    """One protocol of the chain, instrumented; called as `protocol(payload, **task)`."""

    def __init__(self, protocol: Callable[..., Any], step: int, plan: ProbePlan) -> None:
        self.protocol = protocol
        self.step = step
        self.plan = plan
        self.__name__ = getattr(protocol, "__name__", f"step_{step}")

    def __repr__(self) -> str:
        return f"ProbedProtocol({self.protocol!r}, step={self.step})"

    def __call__(self, payload: Any, **task: Any) -> Any:
        execution = _Execution.start(self.plan, self.step, payload, task)
        if execution is None:  # no worker here and no scheduler to report to: unobserved
            return _materialise(self.protocol(payload, **task))
        _local.current = execution
        started = time.time()
        try:
            execution.reach("invoke", 0.0)
            try:
                result = _materialise(self.protocol(payload, **task))
            except BaseException as error:
                execution.emit("fail", error=f"{type(error).__name__}: {error}"[:500],
                               cpu=execution.cpu())
                raise
            execution.reach("result", 1.0)
            if self.plan.turn_board is not None:
                execution.take_turn()
            n_outputs = len(result) if isinstance(result, list) else int(result is not None)
            execution.emit("ok", n_outputs=n_outputs, duration=time.time() - started,
                           cpu=execution.cpu())
            return result
        finally:
            _local.current = None


def checkpoints() -> tuple[float, ...]:
    """The progress fractions in (0, 1) the running step should report, in order.

    Outside a probed execution this is empty, so an instrumented protocol runs the
    same with or without the harness.
    """
    execution: _Execution | None = getattr(_local, "current", None)
    if execution is None:
        return ()
    return execution.plan.stops(execution.step, execution.task_id)


def progress(fraction: float) -> None:
    """Report that the running step reached `fraction` (0..1); may hold at a fault point."""
    execution = getattr(_local, "current", None)
    if execution is not None:
        execution.reach("progress", float(fraction))


def release_hold(hold_id: str, decisions: dict[str, Any]) -> bool:
    """Run on a worker by the harness (`Client.run`): let a held probe go on.

    `decisions` maps fault_id to {"consumed": bool, "task": task_id or None}: what the
    harness decided, remembered here so this worker stops asking about spent faults.
    """
    with _lock:
        entry = _holds.get(hold_id)
        if entry is None:
            return False
        entry[1].update(decisions)
        entry[0].set()
        return True


def release_run(run_id: str) -> int:
    """Run on every worker by the harness when a run ends: let all its held probes go.

    A probe can reach a hold after the harness stopped deciding (its report arrives
    too late); without this it would keep its worker's thread until `hold_timeout`.
    """
    with _lock:
        _ended_runs.add(run_id)
        held = [entry for hold_id, entry in _holds.items() if hold_id.startswith(run_id + ":")]
    for released, _ in held:
        released.set()
    return len(held)


async def flush_marker(topic: str, run_id: str, token: str, dask_worker: Any = None) -> None:
    """Run on a worker by the harness: a marker after every event this worker sent so far."""
    await asyncio.sleep(0.005)  # let callbacks queued by task threads send their events first
    dask_worker.log_event(topic, {"run_id": run_id, "type": "flush", "token": token,
                                  "time": time.time()})


# ---------------------------------------------------------------------------- internals

_local = threading.local()
_lock = threading.Lock()
# hold_id -> (event set on release, decisions filled in by the harness)
_holds: dict[str, tuple[threading.Event, dict[str, Any]]] = {}
# What this worker learned about faults of the current run: fault_id -> decision.
_learned: dict[str, dict[str, Any]] = {}
_learned_run: list[str] = [""]
_ended_runs: set[str] = set()
_HOLD_POLL = 0.05  # seconds between checks that the worker is not shutting down


def _materialise(result: Any) -> Any:
    # A generator would run after the probe returned; make "result ready" mean it.
    if inspect.isgenerator(result):
        return list(result)
    return result


@dataclass
class _Execution:
    plan: ProbePlan
    step: int
    task_id: TaskId | None
    index: tuple[int, ...]
    execution: str
    worker: Any  # the Dask Worker, or None outside any worker
    client: Any = None  # outside a worker: the client reports go through
    # CPU time of this thread when the step started: wasted work is CPU spent, not wall
    # time (which counts sleeps and the harness's holds).
    cpu_start: float = field(default_factory=time.thread_time)

    def cpu(self) -> float:
        """Seconds of CPU this execution's thread spent since the step started."""
        return round(time.thread_time() - self.cpu_start, 6)

    @classmethod
    def start(cls, plan: ProbePlan, step: int, payload: Any, task: dict[str, Any]
              ) -> _Execution | None:
        from distributed import get_worker

        index = tuple(getattr(payload, "index", ()) or ()) if step > 0 else ()
        try:
            worker = get_worker()
        except ValueError:
            worker = None
        if worker is not None:
            execution = cls(plan, step, task.get("task_id"), index, uuid.uuid4().hex[:16], worker)
            execution.emit("invoke", task_id=execution.task_id, index=list(index), step=step,
                           key=_current_key(worker), worker=worker.address, pid=os.getpid())
            return execution
        if plan.scheduler is None:
            return None
        execution = cls(plan, step, task.get("task_id"), index, uuid.uuid4().hex[:16], None,
                        _client_of(plan.scheduler))
        execution.emit("invoke", task_id=execution.task_id, index=list(index), step=step,
                       key=None, worker=None, pid=os.getpid(), parent_pid=os.getppid(),
                       host=socket.gethostname())
        return execution

    def emit(self, kind: str, **fields: Any) -> None:
        message = {"run_id": self.plan.run_id, "type": kind, "time": time.time(),
                   "execution": self.execution, **fields}
        if self.worker is not None:
            self.worker.log_event(self.plan.topic, message)
        else:
            self.client.log_event(self.plan.topic, message)

    def reach(self, point: ProbePoint, fraction: float) -> None:
        armed = [a.fault_id for a in self.plan.armed if self._matches(a, point, fraction)]
        if not armed:
            if point == "progress":
                self.emit("probe", step=self.step, fraction=fraction, point=point,
                          cpu=self.cpu())
            return
        self._hold(point, fraction, armed)

    def take_turn(self) -> None:
        """In a lockstep replay: finish in the order the original's results did."""
        plan = self.plan
        assert plan.turn_board is not None
        worker = self.worker
        on_worker: dict[str, Any] = {} if worker is None else {
            "has_task": lambda key: key in worker.state.tasks,
            "closing": lambda: _closing(worker),
            "stopped": lambda: not _running(worker),
            "dask_key": str(_current_key(worker) or ""),
            "scheduler_has": lambda key: _scheduler_has(worker, key)}
        given_up = take_turn(plan.turn_board, plan.result_order,
                             (self.task_id, self.index, self.step), plan.turn_patience,
                             cut_short=plan.cut_short, close_behind=plan.close_behind,
                             queued=plan.queued_behind, closed_short=plan.closed_short,
                             behind_taken=plan.behind_taken,
                             after_shutdown=plan.after_shutdown, **on_worker)
        if given_up:
            self.emit("lockstep-diverged", waiting=f"result of {self.task_id} step {self.step}",
                      missing=given_up[:10], patience=plan.turn_patience)

    def _matches(self, armed: ArmedPoint, point: ProbePoint, fraction: float) -> bool:
        if armed.step != self.step or armed.point != point or armed.fraction != fraction:
            return False
        if armed.task_id is not None and armed.task_id != self.task_id:
            return False
        with _lock:
            if _learned_run[0] != self.plan.run_id:
                _learned.clear()
                _learned_run[0] = self.plan.run_id
            known = _learned.get(armed.fault_id)
        if known is None:
            return True
        return not known.get("consumed") and known.get("task") in (None, self.task_id)

    def _hold(self, point: ProbePoint, fraction: float, armed: list[str]) -> None:
        hold_id = f"{self.plan.run_id}:{self.execution}:{point}:{fraction}"
        released = threading.Event()
        decisions: dict[str, Any] = {}
        with _lock:
            if self.plan.run_id in _ended_runs:
                return
            _holds[hold_id] = (released, decisions)
        try:
            where = {} if self.worker is not None else {"worker": None, "parent_pid": os.getppid(),
                                                         "host": socket.gethostname()}
            self.emit("probe", step=self.step, fraction=fraction, point=point,
                      task_id=self.task_id, armed=armed, hold=hold_id, cpu=self.cpu(), **where)
            reason = self._wait(released, hold_id)
            if reason is not None:
                self.emit("hold-timeout", hold=hold_id, armed=armed, reason=reason,
                          waited=self.plan.hold_timeout)
        finally:
            with _lock:
                _holds.pop(hold_id, None)
                if _learned_run[0] == self.plan.run_id:
                    _learned.update(decisions)

    def _wait(self, released: threading.Event, hold_id: str) -> str | None:
        """Wait for the release; None when released, else why the probe stopped waiting.

        A worker shutting down gracefully blocks its event loop until running tasks end,
        so no release could reach it: the probe lets go as soon as it sees the shutdown.
        """
        if self.worker is None:
            from distributed import Event

            set_ = Event(hold_id, client=self.client).wait(timeout=self.plan.hold_timeout)
            return None if set_ else "timeout"
        deadline = time.monotonic() + self.plan.hold_timeout
        while not released.wait(min(_HOLD_POLL, max(0.0, deadline - time.monotonic()))):
            if not _running(self.worker):
                return "worker-closing"
            if time.monotonic() >= deadline:
                return "timeout"
        return None


def _running(worker: Any) -> bool:
    """Whether `worker` is running (or paused), not closing."""
    return getattr(getattr(worker, "status", None), "name", "running") in ("running", "paused")


def _scheduler_has(worker: Any, key: str) -> bool:
    """Whether the scheduler holds `key` in memory, asked from a task's thread on the
    worker's own connection to it (False if it does not answer within 0.5 s)."""
    from distributed.utils import sync

    try:
        holders = sync(worker.loop, worker.scheduler.who_has, keys=[key], callback_timeout=0.5)
    except Exception:  # a scheduler gone or slow: not held, as far as this wait knows
        return False
    return bool(holders.get(key))


def _closing(worker: Any) -> bool:
    """Whether `worker` is closing and has closed its stream to the scheduler: a result
    done from now on never reaches it."""
    stream = getattr(worker, "batched_stream", None)
    return not _running(worker) and (stream is None or stream.please_stop
                                     or stream.comm is None or stream.comm.closed())


def _client_of(address: str) -> Any:
    """This process's client of the scheduler at `address`, made once."""
    from distributed import Client

    with _lock:
        client = _clients.get(address)
        if client is None:
            client = _clients[address] = Client(address, set_as_default=False, timeout=30)
    return client


_clients: dict[str, Any] = {}


def _current_key(worker: Any) -> str | None:
    try:
        key = worker.get_current_task()
    except Exception:  # a probe must never break the protocol it observes
        return None
    return key if isinstance(key, str) else str(key)
