"""A Client whose start failed stays 'connecting' with its event-loop thread running;
its garbage collection can make another client's start fail after 10 s.

Trigger of the failed start: `Client("tls://...", timeout=5)` with no `security=` raises
TypeError (no ssl_context). Dask does not close the half-made client: its status stays
'connecting' and its "IO loop" thread keeps running.

The half-made client is cyclic garbage. If the cyclic garbage collector runs in the
event-loop thread that `LoopRunner._start_unlocked` starts for a *new* client, then
`Client.__del__` -> `close()` -> `LoopRunner.stop()` waits for the class-wide
`LoopRunner._lock`. The starting client holds that lock while it waits (up to 10 s) for
that same thread to report its loop, so after 10 s it fails with
`assert loop is not None` (distributed/utils.py, `LoopRunner._start_unlocked`).

Garbage collection runs at arbitrary allocations in any thread. To make the timing
deterministic this script wraps `distributed.utils.get_loop_factory` (called first thing
in the new "IO loop" thread) so that it calls `gc.collect()` there. Nothing else is
patched.

Run: python docs/upstream/failed_start_deadlocks_next_client.py
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import distributed
import distributed.utils as dask_utils
from distributed import Client

HARD_LIMIT = 85  # seconds, for the whole script
DASK = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def io_loop_threads() -> int:
    return sum(t.name == "IO loop" and t.is_alive() for t in threading.enumerate())


def wait_for_line(log: Path, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise TimeoutError(f"no {pattern!r} in {log} after {timeout} s:\n{log.read_text()}")


def failed_client(tls_address: str) -> Client:
    """Start a Client that fails; return the half-made Client object."""
    try:
        Client(tls_address, timeout=5)
    except Exception as error:
        print("failed start raised:", repr(error))
        tb = error.__traceback__
        while tb is not None:
            candidate = tb.tb_frame.f_locals.get("self")
            if isinstance(candidate, Client):
                return candidate
            tb = tb.tb_next
    raise RuntimeError("the failing Client did not fail as expected")


def start_second_client(address: str, *, close_first: bool, tls_address: str) -> str:
    """Fail one client start, drop it, then start another client with a garbage
    collection placed in the new client's event-loop thread. Returns the outcome."""
    gc.collect()
    gc.disable()
    real_factory = dask_utils.get_loop_factory
    collected = []

    def factory_after_gc():
        if threading.current_thread().name == "IO loop":
            collected.append("gc started in the new loop thread")
            gc.collect()
            collected.append("gc done")
        return real_factory()

    try:
        half = failed_client(tls_address)
        print("  half-made client status:", repr(half.status), "| IO loop threads:",
              io_loop_threads())
        if close_first:
            half.close()  # what the project's ClosingClient does
            print("  closed it explicitly; IO loop threads:", io_loop_threads())
        del half  # now only the cyclic garbage collector can reclaim it

        dask_utils.get_loop_factory = factory_after_gc
        started = time.monotonic()
        try:
            with Client(address, timeout=30) as second:
                outcome = f"started, status {second.status!r}"
        except BaseException as error:
            where = traceback.extract_tb(error.__traceback__)[-1]
            outcome = (f"failed with {type(error).__name__} {str(error)!r} at "
                       f"{Path(where.filename).name}:{where.lineno} {where.line!r}")
        took = time.monotonic() - started
        print(f"  second client {outcome} after {took:.1f} s")
        print(f"  when it returned: {collected}")
        return outcome
    finally:
        dask_utils.get_loop_factory = real_factory
        gc.enable()


def main(folder: Path, procs: list[subprocess.Popen]) -> str:
    log = folder / "scheduler.log"
    port = free_port()
    with open(log, "wb") as out:
        procs.append(subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    address = wait_for_line(log, r"Scheduler at:\s+(\S+)", 30)
    tls_address = address.replace("tcp://", "tls://")
    print("plain TCP scheduler at", address, "| the failing client uses", tls_address)

    print("1. the failed client is left half open:")
    before = io_loop_threads()
    gc.disable()
    try:
        half = failed_client(tls_address)
        status = half.status
        after = io_loop_threads()
        print(f"  status {status!r}; 'IO loop' threads before {before}, after {after}")
        half.close()
        del half
    finally:
        gc.enable()
    left_open = status == "connecting" and after == before + 1

    print("2. control: the failed client is closed before the second client starts")
    control = start_second_client(address, close_first=True, tls_address=tls_address)
    print("3. the failed client is left to the garbage collector")
    outcome = start_second_client(address, close_first=False, tls_address=tls_address)
    time.sleep(1)
    print("  'IO loop' threads 1 s later:", io_loop_threads(),
          "(the one started for the second client is left running)")

    deadlock = "AssertionError" in outcome and control.startswith("started")
    if left_open and deadlock:
        return ("BUG PRESENT: the failed client stayed 'connecting' with its loop thread "
                f"running, and its garbage collection made the next client's start fail "
                f"({outcome})")
    if left_open:
        return ("BUG PRESENT (first part only): the failed client stayed 'connecting' with "
                f"its loop thread running; the next client start: {outcome}")
    return f"NOT REPRODUCED: status {status!r}, threads {before}->{after}, second: {outcome}"


def on_alarm(signum, frame):
    raise TimeoutError(f"script exceeded {HARD_LIMIT} s")


if __name__ == "__main__":
    print("distributed", distributed.__version__)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(HARD_LIMIT)
    started = time.monotonic()
    procs: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            verdict = main(Path(folder), procs)
    except Exception as error:
        verdict = f"NOT REPRODUCED: the script failed: {error!r}"
    finally:
        signal.alarm(0)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    print(f"({time.monotonic() - started:.1f} s)")
    print(verdict)
