"""Protocols that can be killed mid-step, and the killer.

Killing is exact: an armed protocol writes its pid and Dask key to a "victim" file
halfway through its step and then waits; `Assassin`, a thread in the test process,
SIGKILLs that worker (and, if asked, every other worker holding the step's input)
while the protocol is still mid-step. Each arm file is claimed by one attempt only,
so the resubmitted attempt runs to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
from distributed import Client, LocalCluster, Scheduler, Worker, get_worker
from distributed.active_memory_manager import RetireWorker
from distributed.core import Status

cloudpickle.register_pickle_by_value(sys.modules[__name__])

KILL_WAIT = 20.0  # an armed protocol gives up (and fails loudly) if not killed by then


def probe_step(payload: Any, *, task_id: Any, step: int, kill_dir: str | None = None,
               seconds: float = 0.05, fan_out: int = 1, **_: Any) -> Any:
    """A protocol step: sleeps `seconds`, and dies mid-step when armed for (task_id, step)."""
    time.sleep(seconds / 2)
    if kill_dir is not None:
        mode = _claim_arm(Path(kill_dir), task_id, step)
        if mode is not None:
            victim = {"pid": os.getpid(), "key": get_worker().get_current_task(), "mode": mode,
                      "task_id": task_id, "step": step}
            path = Path(kill_dir, f"victim-{uuid.uuid4().hex}.json")
            path.with_suffix(".tmp").write_text(json.dumps(victim))
            path.with_suffix(".tmp").rename(path)
            time.sleep(KILL_WAIT)
            raise RuntimeError(f"armed task {task_id!r} step {step} was never killed")
    time.sleep(seconds / 2)
    outputs = [f"{payload}>{task_id}.{step}.{i}" for i in range(fan_out)]
    return outputs if fan_out != 1 else outputs[0]


def _claim_arm(kill_dir: Path, task_id: Any, step: int) -> str | None:
    for arm in sorted(kill_dir.glob(f"arm-{task_id}-s{step}-*")):
        try:
            claimed = arm.with_name("claimed-" + arm.name)
            arm.rename(claimed)  # atomic: exactly one attempt claims each arm file
        except FileNotFoundError:
            continue
        return claimed.read_text()
    return None


def expected_value(task_id: Any, steps: int, initial: str = "in") -> str:
    value = initial
    for step in range(steps):
        value = f"{value}>{task_id}.{step}.0"
    return value


@dataclass
class Kill:
    task_id: Any
    step: int
    key: str
    pids: list[int]
    holders_of_input: int


class Assassin:
    """Kills workers at armed protocols' probe points, from a thread of the test process."""

    def __init__(self, client: Client, directory: Path) -> None:
        self.client = client
        self.dir = directory
        self.kills: list[Kill] = []
        self.errors: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="assassin", daemon=True)
        self._thread.start()

    def arm(self, task_id: Any, step: int = 0, times: int = 1, *,
            all_holders: bool = False) -> None:
        """Kill the worker running (task_id, step) on its next `times` attempts.

        all_holders: also kill every worker holding a copy of the step's input, so
        that the input is certainly lost.
        """
        for n in range(times):
            mode = "all-holders" if all_holders else "executor"
            Path(self.dir, f"arm-{task_id}-s{step}-{n}").write_text(mode)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for victim in sorted(self.dir.glob("victim-*.json")):
                try:
                    self._kill(json.loads(victim.read_text()))
                except Exception as error:  # noted, and raised by the fixture at teardown
                    self.errors.append(error)
                victim.unlink()
            time.sleep(0.01)

    def _kill(self, victim: dict[str, Any]) -> None:
        pids = {victim["pid"]}
        holders: dict[str, int] = {}
        try:
            holders = self._input_holders(victim["key"])
            if victim["mode"] == "all-holders":
                pids |= set(holders.values())
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.kills.append(Kill(victim["task_id"], victim["step"], victim["key"],
                                   sorted(pids), len(holders)))

    def _input_holders(self, key: str) -> dict[str, int]:
        """Address -> pid of each worker holding an input of the task `key`."""

        def holders(key: str, dask_scheduler: Any) -> dict[str, int]:
            ts = dask_scheduler.tasks.get(key)
            if ts is None:
                return {}
            return {ws.address: ws.pid for dep in ts.dependencies for ws in (dep.who_has or ())}

        return dict(self.client.run_on_scheduler(holders, key))


def chain(steps: int) -> list[Any]:
    """`steps` probe_step protocols, each knowing its own step index."""
    return [functools.partial(probe_step, step=step) for step in range(steps)]


def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def two_workers(local_cluster: LocalCluster, client: Client) -> None:
    """Wait for the shared cluster's two workers; a nanny that failed to bring its worker
    back (seen on loaded CI hosts, twice) is replaced by a new one."""
    try:
        client.wait_for_workers(2, timeout=30)
    except TimeoutError:
        for name, worker in list(local_cluster.workers.items()):
            if getattr(worker, "status", None) in (Status.closed, Status.failed):
                local_cluster.workers.pop(name, None)
                local_cluster.worker_spec.pop(name, None)
        while len(local_cluster.worker_spec) < 2:
            local_cluster.worker_spec.update(local_cluster.new_worker_spec())
        local_cluster.scale(len(local_cluster.worker_spec))
        client.wait_for_workers(2, timeout=60)


def task_state(key: str, dask_scheduler: Any = None) -> str | None:
    """On the scheduler: `key`'s state, None when it does not know the key."""
    task = dask_scheduler.tasks.get(key)
    return None if task is None else task.state


def library_keys(dask_scheduler: Any) -> dict[str, str]:
    """The keys this library made that the scheduler still knows, with their state and
    the clients that want them: what a run must not leave behind."""
    return {str(key): f"{ts.state}, wanted by {sorted(c.client_key for c in ts.who_wants or ())}"
            for key, ts in dask_scheduler.tasks.items() if str(key).startswith("rs-")}


def wait_until_released(client: Client, before: dict[str, str], timeout: float,
                        what: str) -> None:
    """Wait until the scheduler forgets every library key not in `before` (the keys an
    earlier test left: not this run's business); on timeout, name those it still has."""
    deadline = time.monotonic() + timeout
    while True:
        left = {key: state for key, state in client.run_on_scheduler(library_keys).items()
                if key not in before}
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; the "
                                 f"scheduler still has {left}")
        time.sleep(0.05)


@contextlib.contextmanager
def logged(name: str = "resilience", level: int = logging.INFO) -> Iterator[list[str]]:
    """The messages logger `name` (the library's own) emits meanwhile, at `level` or
    above: a handler on that logger, whatever other tests did to the root's handlers."""
    messages: list[str] = []
    handler = logging.Handler(level)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    before = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)


def credit_the_wrong_worker(prefix: str, dask_scheduler: Any = None) -> None:
    """What Dask's scatter does when its worker dies and another process comes back at
    the same address before the scatter is recorded: the scheduler credits the data to
    a worker that does not hold it. Here the first scattered key starting with `prefix`
    is credited to the other worker, which never got it."""
    real = dask_scheduler.update_data

    def update_data(*, who_has: Any, nbytes: Any, client: Any = None) -> Any:
        for key, holders in list(who_has.items()):
            if str(key).startswith(prefix) and not dask_scheduler.credited_wrongly:
                dask_scheduler.credited_wrongly = [str(key)]
                who_has[key] = [next(a for a in dask_scheduler.workers if a not in holders)]
        return real(who_has=who_has, nbytes=nbytes, client=client)

    dask_scheduler.credited_wrongly = []
    dask_scheduler.real_update_data = real
    dask_scheduler.update_data = update_data


def credit_rightly_again(dask_scheduler: Any = None) -> list[str]:
    dask_scheduler.update_data = dask_scheduler.real_update_data
    return dask_scheduler.credited_wrongly


def only_the_left_over_retirement_goes(forget: Callable[[Any], Any]) -> None:
    """`forget(scheduler)` must take out a Dask retirement left over (naming a running
    worker), and leave one under way: Dask marks the worker it retires closing_gracefully
    as it adds the policy, and taking that one out would close the worker at once, with
    whatever only it holds."""

    async def check() -> None:
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address=":0") as scheduler, \
                Worker(scheduler.address, nthreads=1, host="127.0.0.1") as retiring, \
                Worker(scheduler.address, nthreads=1, host="127.0.0.1") as running:
            amm = scheduler.extensions["amm"]
            under_way, left_over = RetireWorker(retiring.address), RetireWorker(running.address)
            amm.add_policy(under_way)
            amm.add_policy(left_over)
            scheduler.handle_worker_status_change(
                Status.closing_gracefully, scheduler.workers[retiring.address], "test-retire")
            if inspect.isawaitable(forgetting := forget(scheduler)):
                await forgetting
            assert under_way in amm.policies
            assert left_over not in amm.policies

    asyncio.run(asyncio.wait_for(check(), timeout=30))
