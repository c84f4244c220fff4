"""How faults are enacted: the one place in the harness that kills, stops or retires workers.

Every kind works on any Dask cluster whose workers have nannies: the harness runs a
small function on the victim's nanny (`Client.run(..., nanny=True)`), which signals
its worker process, or asks the worker to exit or crash, and then watches the process
until the fault has landed (dead, or stopped). `retire` goes through the scheduler.
On a LocalCluster (same host), `local_signals=True` sends SIGKILL, SIGSTOP and SIGCONT
straight from this process and watches /proc here: no round trip at all.

The nanny is asked *before* the worker dies, while the scheduler still knows which
nanny owns the worker; resuming a frozen worker later talks to that nanny directly,
because the scheduler may have dropped the frozen worker by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from distributed import Client
from distributed.protocol.pickle import dumps

from chaos.errors import FaultError
from chaos.faults import FaultKind

Mechanism = Literal["nanny", "local", "worker", "scheduler"]
Settle = Literal["gone", "stopped"]


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


@dataclass(frozen=True)
class Victim:
    """A worker as the harness knows it when a fault is aimed at it."""

    address: str
    pid: int | None
    nanny: str | None


class Inflictor:
    """Enacts faults on workers and undoes freezes; thread-safe, driven by the coordinator."""

    def __init__(self, client: Client, *, local_signals: bool = False, land_timeout: float = 5.0,
                 on_thaw: Any = None) -> None:
        self.client = client
        self.local_signals = local_signals
        self.land_timeout = land_timeout
        self._on_thaw = on_thaw  # callback(address, how, time) when a freeze ends
        self._lock = threading.Lock()
        self._frozen: dict[str, tuple[Victim, threading.Timer | None]] = {}
        # The processes each signal reached (the worker and its children), for SIGCONT.
        self._trees: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ public

    def inflict(self, kind: FaultKind, victim: Victim, *, freeze_for: float | None = None
                ) -> Landing:
        """Enact `kind` on `victim`; returns once it landed or `land_timeout` passed."""
        try:
            landing: Landing = getattr(self, "_" + kind)(victim)
        except FaultError as error:
            return Landing(kind, victim.address, victim.pid, "nanny", time.time(), None, str(error))
        if kind == "freeze" and landing.landed_at is not None:
            self._remember_freeze(victim, freeze_for)
        return landing

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
        return self._in_worker("exit", victim, _worker_exit)

    def _segfault(self, victim: Victim) -> Landing:
        return self._in_worker("segfault", victim, _worker_segfault)

    def _sigterm(self, victim: Victim) -> Landing:
        # What `dask worker` does on SIGTERM: close the nanny, which stops its worker
        # gracefully and does not restart it. Its pid is watched only from this host.
        reply = self._on_nanny(victim, _nanny_shutdown, "signal-15")
        fired = reply["fired_at"]
        pid = reply["pid"] or victim.pid
        if self.local_signals and pid:
            landed, error = _watch_local(pid, "gone", self.land_timeout)
            return Landing("sigterm", victim.address, pid, "nanny", fired, landed, error)
        # Remotely, the end of a graceful shutdown is seen only as the scheduler's notice.
        return Landing("sigterm", victim.address, pid, "nanny", fired, None)

    def _retire(self, victim: Victim) -> Landing:
        fired = time.time()
        scheduler = self.client.scheduler
        assert scheduler is not None, "the client is not connected"
        try:
            self.client.sync(scheduler.retire_workers, workers=[victim.address],
                             close_workers=True, callback_timeout=max(self.land_timeout, 10.0))
        except Exception as error:  # a failed fault is recorded, not raised
            return Landing("retire", victim.address, victim.pid, "scheduler", fired, None,
                           f"retire_workers failed: {type(error).__name__}: {error}")
        return Landing("retire", victim.address, victim.pid, "scheduler", fired, time.time())

    # ------------------------------------------------------------------ mechanisms

    def _signal(self, kind: FaultKind, victim: Victim, sig: int, settle: Settle) -> Landing:
        if self.local_signals and victim.pid:
            tree = process_tree(victim.pid)
            fired = time.time()
            if not signal_all(tree, sig):
                return Landing(kind, victim.address, victim.pid, "local", fired, None,
                               f"process {victim.pid} was already gone")
            self._trees[victim.address] = tree
            landed, error = _watch_local(victim.pid, settle, self.land_timeout)
            return Landing(kind, victim.address, victim.pid, "local", fired, landed, error)
        reply = self._on_nanny(victim, _nanny_signal, int(sig), settle, self.land_timeout)
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
        reply = self._on_nanny(victim, _nanny_ask_worker, dumps(action), self.land_timeout)
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
        for sig in signals:
            if self.local_signals and victim.pid:
                signal_all(tree, sig)
            elif victim.nanny is not None:
                self._call_nanny_directly(victim.nanny, _nanny_signal_pids, tree, int(sig))
        if self._on_thaw is not None:
            self._on_thaw(address, how, time.time())

    def _call_nanny_directly(self, nanny: str, function: Any, *args: Any) -> None:
        async def call() -> None:
            await self.client.rpc(nanny).run(function=dumps(function), args=dumps(args), wait=True)

        with contextlib.suppress(Exception):  # a nanny gone with its host needs no resume
            self.client.sync(call, callback_timeout=self.land_timeout)


# ---------------------------------------------------------------------------- remote side
# These run inside a nanny or a worker process (through Client.run) and must only use
# the standard library and distributed, which every Dask worker host has. Client.run
# passes its arguments positionally, so `dask_worker` (filled in by Dask) comes last.


async def _nanny_signal(sig: int, settle: Settle, timeout: float, dask_worker: Any = None
                        ) -> dict[str, Any]:
    pid = dask_worker.pid
    fired = time.time()
    if not pid:
        return {"pid": None, "fired_at": fired, "landed_at": None,
                "error": "the nanny has no live worker process"}
    tree = process_tree(pid)
    signal_all(tree, sig)
    landed, error = await _watch(pid, settle, timeout)
    return {"pid": pid, "fired_at": fired, "landed_at": landed, "error": error, "tree": tree}


async def _nanny_ask_worker(action: bytes, timeout: float, dask_worker: Any = None
                            ) -> dict[str, Any]:
    pid = dask_worker.pid
    address = dask_worker.worker_address
    fired = time.time()
    if not pid or not address:
        return {"pid": pid, "fired_at": fired, "landed_at": None,
                "error": "the nanny has no live worker process"}
    children = process_tree(pid)[1:]
    with contextlib.suppress(Exception):  # the worker dies mid-call: that is the point
        await asyncio.wait_for(dask_worker.rpc(address).run(function=action, wait=True), timeout)
    landed, error = await _watch(pid, "gone", timeout)
    signal_all(children, signal.SIGKILL)  # its subprocesses go with it, as with its host
    return {"pid": pid, "fired_at": fired, "landed_at": landed, "error": error}


def _nanny_shutdown(reason: str, dask_worker: Any = None) -> dict[str, Any]:
    pid = dask_worker.pid
    fired = time.time()
    # The nanny closes itself: this call must return before its comms shut down, so the
    # close runs as a task, referenced until it ends.
    task = asyncio.ensure_future(dask_worker.close(timeout=10, reason=reason))
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    return {"pid": pid, "fired_at": fired}


_closing: set[asyncio.Future[Any]] = set()


def _nanny_signal_pids(pids: list[int], sig: int) -> None:
    signal_all(pids, sig)


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (from /proc; just `pid` where there is no /proc).

    A fault takes a worker's subprocesses with it (PyRosettaCluster runs protocols in
    them), as losing its host would, and leaves no stray process behind.
    """
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [pid]
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in children.get(parent, ())]
        tree.extend(frontier)
    return tree


def signal_all(pids: list[int], sig: int) -> bool:
    """Send `sig` to each of `pids`; whether the first (the worker) was still there."""
    reached = []
    for pid in pids:
        try:
            os.kill(pid, sig)
            reached.append(pid)
        except ProcessLookupError:
            continue
    return bool(pids) and pids[0] in reached


def _worker_exit() -> None:
    os._exit(70)


def _worker_segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def process_state(pid: int) -> str | None:
    """The one-letter state of `pid` from /proc (R, S, T, Z...), or None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0].decode()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _settled(pid: int, settle: Settle) -> bool:
    state = process_state(pid)
    if settle == "gone":
        return state in (None, "Z", "X")
    return state in ("T", "t")


async def _watch(pid: int, settle: Settle, timeout: float) -> tuple[float | None, str | None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _settled(pid, settle):
            return time.time(), None
        await asyncio.sleep(0.002)
    return None, f"process {pid} not {settle} after {timeout:g} s"


def _watch_local(pid: int, settle: Settle, timeout: float) -> tuple[float | None, str | None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _settled(pid, settle):
            return time.time(), None
        time.sleep(0.001)
    return None, f"process {pid} not {settle} after {timeout:g} s"
