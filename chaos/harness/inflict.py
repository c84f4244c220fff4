"""How faults are enacted: the one place in the harness that kills, stops or retires workers.

Every worker kind works on any Dask cluster whose workers have nannies: the harness
runs a small function on the victim's nanny (`Client.run(..., nanny=True)`; the
functions are in `chaos.harness.nanny_side`), which signals its worker process, or asks
the worker to exit or crash, and then watches the process until the fault has landed
(dead, or stopped). `retire` goes through the scheduler. On this host
(`local_signals=True`) SIGKILL, SIGSTOP, SIGCONT and a preemption's signals go straight
from this process, and /proc is watched here.

`preempt` is what a machine gets: SIGTERM to the worker's whole process tree (on the
`processes` backend the `dask worker` process, its nanny, and everything below), then
SIGKILL after the notice to whatever is still alive. Remotely, the nanny starts a
detached reaper that sends the SIGKILL, then signals its own tree. `scheduler-kill`
asks the backend, which alone knows the scheduler's process.

The nanny is asked *before* the worker dies, while the scheduler still knows which
nanny owns the worker; resuming a frozen worker later talks to that nanny directly,
because the scheduler may have dropped the frozen worker by then.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from distributed import Client
from distributed.protocol.pickle import dumps

from chaos.errors import FaultError
from chaos.harness import scheduler_calls
from chaos.harness.nanny_side import (
    ask_worker,
    close_nanny,
    crash_worker,
    exit_worker,
    preempt_tree,
    signal_pids,
    signal_worker,
)
from chaos.harness.processes import Settle, process_tree, settled, signal_all, watch_local
from chaos.harness.scatter_race import SCATTER_IN_FLIGHT, ScatterRace
from chaos.spec import ABRUPT_KINDS, FaultKind

Mechanism = Literal["nanny", "local", "worker", "scheduler", "batch-system"]
# The pids a preemption of a worker process signals, seen from this host (empty: unknown).
WorkerTree = Callable[[int | None], list[int]]
# SIGKILL the scheduler: (its pid, None), or (None, why not).
KillScheduler = Callable[[], tuple[int | None, str | None]]
# Seconds between asks of a retirement Dask gave up (no worker could take its data).
RETIRE_AGAIN = 0.1

# A backend's own preemption (a batch system's): its Landing, or None to let the harness
# signal the worker's tree itself.
PreemptHook = Callable[["Victim", float], "Landing | None"]


@dataclass(frozen=True)
class Landing:
    """What happened when a fault was enacted. Times are epoch seconds.

    `landed_at` is when the effect was confirmed (process gone, or stopped, or the
    worker retired); None when it could not be confirmed, with `error` saying why.
    """

    kind: FaultKind
    worker: str
    pid: int | None
    mechanism: Mechanism
    fired_at: float
    landed_at: float | None
    error: str | None = None
    # preempt: whether anything was still alive at the end of the notice (and got SIGKILL).
    killed_after_notice: bool | None = None


@dataclass(frozen=True)
class Victim:
    """A worker as the harness knows it when a fault is aimed at it."""

    address: str
    pid: int | None
    nanny: str | None


class Inflictor:
    """Enacts faults on workers and undoes freezes; thread-safe, driven by the coordinator."""

    def __init__(self, client: Client, *, local_signals: bool = False, land_timeout: float = 5.0,
                 on_thaw: Any = None, before_thaw: Callable[[str], None] | None = None,
                 worker_tree: WorkerTree | None = None,
                 kill_scheduler: KillScheduler | None = None,
                 preempt_hook: PreemptHook | None = None) -> None:
        self.client = client
        self.local_signals = local_signals
        self._worker_tree = worker_tree or (lambda pid: process_tree(pid) if pid else [])
        self._kill_scheduler = kill_scheduler
        self._preempt_hook = preempt_hook
        self.land_timeout = land_timeout
        self._on_thaw = on_thaw  # callback(address, how, time) when a freeze ends
        self._before_thaw = before_thaw  # callback(address) before a resume
        self._lock = threading.Lock()
        self._frozen: dict[str, tuple[Victim, threading.Timer | None]] = {}
        # The processes each signal reached (the worker and its children), for SIGCONT.
        self._trees: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ public

    def inflict(self, kind: FaultKind, victim: Victim, *, freeze_for: float | None = None,
                notice: float | None = None) -> Landing:
        """Enact `kind` on `victim`; returns once it landed or `land_timeout` passed (a
        preemption: once its notice is over)."""
        try:
            if kind == "preempt":
                return self._preempt(victim, 0.0 if notice is None else notice)
            landing: Landing = getattr(self, "_" + kind.replace("-", "_"))(victim)
        except FaultError as error:
            return Landing(kind, victim.address, victim.pid, "nanny", time.time(), None, str(error))
        if kind == "freeze" and landing.landed_at is not None:
            self._remember_freeze(victim, freeze_for)
        return landing

    def rerank(self, address: str, priorities: dict[str, int]) -> list[list[Any]]:
        """Before a fault lands on `address`, give each step processing there named in
        `priorities` that Dask priority, which its rerun elsewhere is sent with
        (`scheduler_calls.rerank`): [key, priority] of each one changed."""
        changed: list[list[Any]] = self.client.run_on_scheduler(
            scheduler_calls.rerank, priorities, address,
            callback_timeout=scheduler_calls.CALL_TIMEOUT)
        return changed

    def held_kill(self, kind: FaultKind, victim: Victim,
                  race: ScatterRace) -> Callable[[], Landing] | None:
        """Abrupt fault `kind` held for the client's scatter (`race`): stop `victim`
        (SIGSTOP, on this host) now if it had died before that scatter in the original,
        and return the rest: wait for the client, stop it, let the client scatter, and
        SIGKILL it once the scatter is on its way (at once, if the client made it
        before the fault fired, as in the original). Whatever the kind, SIGKILL: stopped,
        the worker can neither exit nor crash itself, and the cluster cannot tell those
        deaths apart. None, with nothing done, where that cannot be."""
        tree = process_tree(victim.pid) if victim.pid else []
        if (kind not in ABRUPT_KINDS or not (self.local_signals and tree)
                or (race.meeting.died_before and not signal_all(tree, signal.SIGSTOP))):
            race.end()  # the client waits for nothing
            return None
        race.arm()

        def kill() -> Landing:
            if not race.wait_for_client():
                race.wait_for_landings()
                signal_all(tree, signal.SIGSTOP)
                race.release()
                time.sleep(SCATTER_IN_FLIGHT)
            return self._signal(kind, victim, signal.SIGKILL, "gone")

        return kill

    def frozen(self) -> list[str]:
        with self._lock:
            return sorted(self._frozen)

    def thaw_all(self) -> None:
        """End every freeze now: resume timed ones, kill those meant to last forever.

        Called when a run ends, so that no SIGSTOPped process outlives it.
        """
        with self._lock:
            frozen = list(self._frozen.items())
        for address, (_, timer) in frozen:
            if timer is not None:
                timer.cancel()
                self._thaw(address, "sigcont")
            else:
                self._thaw(address, "sigkill")

    # ------------------------------------------------------------------ kinds

    def _sigkill(self, victim: Victim) -> Landing:
        return self._signal("sigkill", victim, signal.SIGKILL, "gone")

    def _freeze(self, victim: Victim) -> Landing:
        return self._signal("freeze", victim, signal.SIGSTOP, "stopped")

    def _exit(self, victim: Victim) -> Landing:
        return self._in_worker("exit", victim, exit_worker)

    def _segfault(self, victim: Victim) -> Landing:
        return self._in_worker("segfault", victim, crash_worker)

    def _nanny_close(self, victim: Victim) -> Landing:
        # What `dask worker` does on SIGTERM: close the nanny, which stops its worker
        # gracefully and does not restart it. Its pid is watched only from this host.
        reply = self._on_nanny(victim, close_nanny, "signal-15")
        fired = reply["fired_at"]
        pid = reply["pid"] or victim.pid
        if self.local_signals and pid:
            landed, error = watch_local(pid, "gone", self.land_timeout)
            return Landing("nanny-close", victim.address, pid, "nanny", fired, landed, error)
        # Remotely, the end of a graceful shutdown is seen only as the scheduler's notice.
        return Landing("nanny-close", victim.address, pid, "nanny", fired, None)

    def _preempt(self, victim: Victim, notice: float) -> Landing:
        if self._preempt_hook is not None:
            landing = self._preempt_hook(victim, notice)
            if landing is not None:
                return landing
        tree = self._worker_tree(victim.pid) if self.local_signals else []
        if not tree:  # not on this host: the nanny signals its own tree
            reply = self._on_nanny(victim, preempt_tree, notice)
            return Landing("preempt", victim.address, reply["pid"], "nanny", reply["fired_at"],
                           None, reply.get("error"))
        fired = time.time()
        signal_all(tree, signal.SIGTERM)
        deadline = time.monotonic() + notice
        while time.monotonic() < deadline and not all(settled(pid, "gone") for pid in tree):
            time.sleep(0.005)
        # Children started during the notice go too, as with the machine.
        alive = [pid for pid in dict.fromkeys(
            child for pid in tree if not settled(pid, "gone") for child in process_tree(pid))
            if not settled(pid, "gone")]
        signal_all(alive, signal.SIGKILL)
        landed, error = watch_local(victim.pid, "gone", self.land_timeout) if victim.pid else (
            time.time(), None)
        for pid in alive:  # the machine is gone only when all of it is
            watch_local(pid, "gone", self.land_timeout)
        return Landing("preempt", victim.address, victim.pid, "local", fired, landed, error,
                       killed_after_notice=bool(alive))

    def _scheduler_kill(self, victim: Victim) -> Landing:
        fired = time.time()
        if self._kill_scheduler is None:
            return Landing("scheduler-kill", victim.address, None, "local", fired, None,
                           "this cluster's backend cannot kill its scheduler")
        pid, error = self._kill_scheduler()
        return Landing("scheduler-kill", victim.address, pid, "local", fired,
                       time.time() if pid is not None else None, error)

    def _retire(self, victim: Victim, fired: float | None = None) -> Landing:
        """Retire `victim` through the scheduler. Dask gives a retirement up, and leaves
        its worker running, when no other worker can take the data only it holds (all
        leaving, say); an autoscaler asks again, so this does, every RETIRE_AGAIN
        seconds until `land_timeout` (a refill may have joined by then)."""
        fired = time.time() if fired is None else fired
        scheduler = self.client.scheduler
        assert scheduler is not None, "the client is not connected"
        deadline = time.monotonic() + self.land_timeout
        while True:
            try:
                retired = self.client.sync(scheduler.retire_workers, workers=[victim.address],
                                           close_workers=True,
                                           callback_timeout=max(self.land_timeout, 10.0))
                if victim.address in retired:
                    return Landing("retire", victim.address, victim.pid, "scheduler", fired,
                                   time.time())
                known = self.client.run_on_scheduler(
                    scheduler_calls.worker_name, victim.address,
                    callback_timeout=scheduler_calls.CALL_TIMEOUT) is not None
            except Exception as error:  # a failed fault is recorded, not raised
                return Landing("retire", victim.address, victim.pid, "scheduler", fired, None,
                               f"retire_workers failed: {type(error).__name__}: {error}")
            if not known or time.monotonic() >= deadline:
                why = ("it was gone before Dask retired it" if not known else
                       "Dask did not retire it: no other worker could take the data only it "
                       f"held, asked for {self.land_timeout:g} s")
                return Landing("retire", victim.address, victim.pid, "scheduler", fired, None,
                               why)
            time.sleep(RETIRE_AGAIN)

    def retire_holding_open(self, victim: Victim, keys: Sequence[str], patience: float, *,
                            lose: bool = False) -> tuple[Landing, list[str]]:
        """Retire `victim` held open until its steps `keys` are done (a lockstep
        replay's: `chaos.harness.replay_landing`): first without closing it, then, once
        none of them is still processing there or `patience` has passed, as usual, which
        moves their results too; or, with `lose`, by removing it, which loses them. The
        landing, and the keys still processing then.

        Dask ends a retirement once every key its victim holds has another copy; a step
        still running there then is lost and runs again elsewhere."""
        fired = time.time()
        try:
            running: list[str] = self.client.run_on_scheduler(
                scheduler_calls.retire_holding_open, victim.address, list(keys), patience,
                callback_timeout=max(self.land_timeout, 10.0) + patience)
            if lose:
                self.client.run_on_scheduler(scheduler_calls.remove_retired, victim.address,
                                             callback_timeout=max(self.land_timeout, 10.0))
        except Exception as error:
            return (Landing("retire", victim.address, victim.pid, "scheduler", fired, None,
                            f"retire_workers failed: {type(error).__name__}: {error}"),
                    list(keys))
        if lose:
            return Landing("retire", victim.address, victim.pid, "scheduler", fired,
                           time.time()), running
        return self._retire(victim, fired), running

    # ------------------------------------------------------------------ mechanisms

    def _signal(self, kind: FaultKind, victim: Victim, sig: int, settle: Settle) -> Landing:
        if self.local_signals and victim.pid:
            tree = process_tree(victim.pid)
            fired = time.time()
            if not signal_all(tree, sig):
                return Landing(kind, victim.address, victim.pid, "local", fired, None,
                               f"process {victim.pid} was already gone")
            self._trees[victim.address] = tree
            landed, error = watch_local(victim.pid, settle, self.land_timeout)
            return Landing(kind, victim.address, victim.pid, "local", fired, landed, error)
        reply = self._on_nanny(victim, signal_worker, int(sig), settle, self.land_timeout)
        self._trees[victim.address] = reply.get("tree") or []
        return Landing(kind, victim.address, reply["pid"], "nanny", reply["fired_at"],
                       reply["landed_at"], reply["error"])

    def _in_worker(self, kind: FaultKind, victim: Victim, action: Any) -> Landing:
        if victim.nanny is None:  # no nanny to watch it die: fire and trust the notice
            fired = time.time()
            with contextlib.suppress(Exception):
                self.client.sync(self.client._run, action, workers=[victim.address],
                                 on_error="ignore", callback_timeout=self.land_timeout)
            return Landing(kind, victim.address, victim.pid, "worker", fired, None,
                           "no nanny to confirm the death; see the scheduler's notice")
        reply = self._on_nanny(victim, ask_worker, dumps(action), victim.address,
                               self.land_timeout)
        return Landing(kind, victim.address, reply["pid"], "nanny", reply["fired_at"],
                       reply["landed_at"], reply["error"])

    def _on_nanny(self, victim: Victim, function: Any, *args: Any) -> dict[str, Any]:
        try:
            replies = self.client.sync(self.client._run, function, *args,
                                       workers=[victim.address], nanny=True, on_error="return",
                                       callback_timeout=2 * self.land_timeout)
        except Exception as error:
            raise FaultError(f"could not reach the nanny of {victim.address}: {error}") from None
        reply = replies.get(victim.address)
        if not isinstance(reply, dict):
            raise FaultError(
                f"the nanny of {victim.address} did not enact the fault ({reply!r}); the worker "
                "may have left already, or it runs without a nanny (start workers with one)."
            )
        return reply

    # ------------------------------------------------------------------ freezes

    def _remember_freeze(self, victim: Victim, freeze_for: float | None) -> None:
        timer = None
        if freeze_for is not None:
            timer = threading.Timer(freeze_for, self._thaw, (victim.address, "sigcont"))
            timer.daemon = True
        with self._lock:
            self._frozen[victim.address] = (victim, timer)
        if timer is not None:
            timer.start()

    def _thaw(self, address: str, how: Literal["sigcont", "sigkill"]) -> None:
        with self._lock:
            entry = self._frozen.pop(address, None)
        if entry is None:
            return
        victim = entry[0]
        tree = self._trees.pop(address, None) or ([victim.pid] if victim.pid else [])
        signals = [signal.SIGCONT] if how == "sigcont" else [signal.SIGKILL, signal.SIGCONT]
        if how == "sigcont" and self._before_thaw is not None:
            self._before_thaw(address)
        for sig in signals:
            if self.local_signals and victim.pid:
                signal_all(tree, sig)
            elif victim.nanny is not None:
                self._call_nanny_directly(victim.nanny, signal_pids, tree, int(sig))
        if self._on_thaw is not None:
            self._on_thaw(address, how, time.time())

    def _call_nanny_directly(self, nanny: str, function: Any, *args: Any) -> None:
        async def call() -> None:
            await self.client.rpc(nanny).run(function=dumps(function), args=dumps(args), wait=True)

        with contextlib.suppress(Exception):  # a nanny gone with its host needs no resume
            self.client.sync(call, callback_timeout=self.land_timeout)
