"""The remote side of `chaos.harness.inflict`: functions that run inside a worker's nanny
or the worker itself (through `Client.run`), to signal, stop or crash it there.

They must only use the standard library, distributed and `chaos.harness.processes`,
which a worker host has. Client.run passes its arguments positionally, so
`dask_worker` (filled in by Dask) comes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

from chaos.harness.processes import Settle, process_tree, signal_all, watch


async def signal_worker(sig: int, settle: Settle, timeout: float, dask_worker: Any = None
                        ) -> dict[str, Any]:
    pid = dask_worker.pid
    fired = time.time()
    if not pid:
        return {"pid": None, "fired_at": fired, "landed_at": None,
                "error": "the nanny has no live worker process"}
    tree = process_tree(pid)
    signal_all(tree, sig)
    landed, error = await watch(pid, settle, timeout)
    return {"pid": pid, "fired_at": fired, "landed_at": landed, "error": error, "tree": tree}


async def ask_worker(action: bytes, address: str, timeout: float,
                            dask_worker: Any = None) -> dict[str, Any]:
    # `address` is the worker the scheduler named. Not the nanny's `worker_address`: while
    # the nanny restarts its worker, that still names the dead predecessor.
    pid = dask_worker.pid
    fired = time.time()
    if not pid or not address:
        return {"pid": pid, "fired_at": fired, "landed_at": None,
                "error": "the nanny has no live worker process"}
    children = process_tree(pid)[1:]
    with contextlib.suppress(Exception):  # the worker dies mid-call: that is the point
        await asyncio.wait_for(dask_worker.rpc(address).run(function=action, wait=True), timeout)
    landed, error = await watch(pid, "gone", timeout)
    signal_all(children, signal.SIGKILL)  # its subprocesses go with it, as with its host
    return {"pid": pid, "fired_at": fired, "landed_at": landed, "error": error}


def close_nanny(reason: str, dask_worker: Any = None) -> dict[str, Any]:
    pid = dask_worker.pid
    fired = time.time()
    # The nanny closes itself: this call must return before its comms shut down, so the
    # close runs as a task, referenced until it ends.
    task = asyncio.ensure_future(dask_worker.close(timeout=10, reason=reason))
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    return {"pid": pid, "fired_at": fired}


_closing: set[asyncio.Future[Any]] = set()


def preempt_tree(notice: float, dask_worker: Any = None) -> dict[str, Any]:
    """In the nanny: a detached reaper SIGKILLs the tree after `notice`; then SIGTERM it."""
    if not _runs_dask_worker():
        return {"pid": dask_worker.pid, "fired_at": time.time(),
                "error": "this nanny runs inside another program (a LocalCluster?), which a "
                         "SIGTERM would take down too; preempt it with local signals"}
    tree = process_tree(os.getpid())  # the nanny's process, its worker, their children
    fired = time.time()
    reaper = ("import os, signal, sys, time; time.sleep(float(sys.argv[1])); "
              "[os.kill(int(p), signal.SIGKILL) for p in sys.argv[2:] "
              "if os.path.exists(f'/proc/{p}')]")
    try:
        subprocess.Popen([sys.executable, "-c", reaper, str(notice), *map(str, tree)],
                         start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as error:
        return {"pid": dask_worker.pid, "fired_at": fired, "error": f"no reaper: {error}"}
    # Signalled just after this call returns, so that its reply still gets out.
    asyncio.get_running_loop().call_later(0.05, signal_all, tree, signal.SIGTERM)
    return {"pid": dask_worker.pid, "fired_at": fired, "error": None}


def _runs_dask_worker() -> bool:
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    return program == "dask" or program.startswith("dask-worker") or (
        program in ("__main__.py", "dask_worker.py") and "dask" in sys.argv[0])


def signal_pids(pids: list[int], sig: int) -> None:
    signal_all(pids, sig)


def exit_worker() -> None:
    os._exit(70)


def crash_worker() -> None:
    import ctypes

    ctypes.string_at(0)
