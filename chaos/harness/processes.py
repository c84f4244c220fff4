"""Worker processes as the operating system sees them: trees, signals, states, from /proc.

Used both here, in the harness (LocalCluster workers on this host), and inside a remote
nanny (through `Client.run`), so it needs the standard library only.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Literal

# What a fault waits for: the process gone (dead or a zombie), or stopped (SIGSTOP).
Settle = Literal["gone", "stopped"]


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


def process_state(pid: int) -> str | None:
    """The one-letter state of `pid` from /proc (R, S, T, Z...), or None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0].decode()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def settled(pid: int, settle: Settle) -> bool:
    state = process_state(pid)
    if settle == "gone":
        return state in (None, "Z", "X")
    return state in ("T", "t")


async def watch(pid: int, settle: Settle, timeout: float) -> tuple[float | None, str | None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if settled(pid, settle):
            return time.time(), None
        await asyncio.sleep(0.002)
    return None, f"process {pid} not {settle} after {timeout:g} s"


def watch_local(pid: int, settle: Settle, timeout: float) -> tuple[float | None, str | None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if settled(pid, settle):
            return time.time(), None
        time.sleep(0.001)
    return None, f"process {pid} not {settle} after {timeout:g} s"
