"""A synchronous call to a dead scheduler blocks for about the client's whole reconnect
timeout, and the client is closed afterwards.

A `dask scheduler` and a `dask worker` subprocess are started, and a
`Client(address, timeout=20)` connects. The scheduler is then SIGKILLed. Synchronous
calls such as `client.run_on_scheduler(...)` and `client.nthreads()` do not fail fast:
they block until the client gives up reconnecting (`timeout` after the scheduler was
lost), and then the client is closed for good, even once a scheduler is back.
Passing `callback_timeout=2` bounds the same calls.

Run: python docs/upstream/sync_call_to_dead_scheduler.py
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import distributed
from distributed import Client

HARD_LIMIT = 85  # seconds, for the whole script
CLIENT_TIMEOUT = 20  # seconds: Client(timeout=...)
DASK = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_line(log: Path, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise TimeoutError(f"no {pattern!r} in {log} after {timeout} s:\n{log.read_text()}")


def spawn(args: list[str], log: Path, procs: list[subprocess.Popen]) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen([DASK, *args], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    procs.append(proc)
    return proc


def timed(what: str, call, killed_at: float) -> tuple[float, str]:
    started = time.monotonic()
    try:
        result = f"returned {call()!r}"
    except Exception as error:
        result = f"raised {type(error).__name__}: {str(error)[:100]}"
    took = time.monotonic() - started
    print(f"  {what}: {result} after {took:.1f} s "
          f"({time.monotonic() - killed_at:.1f} s since the kill)")
    return took, result


def main(folder: Path, procs: list[subprocess.Popen]) -> str:
    port = free_port()
    scheduler = spawn(["scheduler", "--host", "127.0.0.1", "--port", str(port),
                       "--no-dashboard"], folder / "scheduler.log", procs)
    address = wait_for_line(folder / "scheduler.log", r"Scheduler at:\s+(\S+)", 30)
    spawn(["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
           "--host", "127.0.0.1"], folder / "worker.log", procs)

    client = Client(address, timeout=CLIENT_TIMEOUT)
    try:
        client.wait_for_workers(1, timeout=30)
        print(f"connected: Client({address!r}, timeout={CLIENT_TIMEOUT});",
              "workers:", list(client.nthreads()))

        os.killpg(scheduler.pid, signal.SIGKILL)
        scheduler.wait(timeout=10)
        killed_at = time.monotonic()
        print("scheduler SIGKILLed")

        print("bounded calls (callback_timeout=2):")
        bounded = [
            timed("run_on_scheduler(lambda: 1, callback_timeout=2)",
                  lambda: client.run_on_scheduler(lambda: 1, callback_timeout=2),
                  killed_at),
            timed("nthreads(callback_timeout=2)",
                  lambda: client.nthreads(callback_timeout=2), killed_at),
        ]
        print("  client status:", repr(client.status))

        print("unbounded calls (both at once, from two threads):")
        with ThreadPoolExecutor(2) as pool:
            unbounded = list(pool.map(lambda args: timed(*args, killed_at), [
                ("run_on_scheduler(lambda: 1)", lambda: client.run_on_scheduler(lambda: 1)),
                ("nthreads()", lambda: client.nthreads()),
            ]))
        ended = time.monotonic() - killed_at
        deadline = time.monotonic() + 5
        while client.status != "closed" and time.monotonic() < deadline:
            time.sleep(0.1)
        status = client.status
        print("  client status:", repr(status))
        print("after the scheduler is back (same port):")
        spawn(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
              folder / "scheduler2.log", procs)
        wait_for_line(folder / "scheduler2.log", r"Scheduler at:\s+(\S+)", 30)
        timed("nthreads(callback_timeout=5)",
              lambda: client.nthreads(callback_timeout=5), killed_at)
        print("  client status:", repr(client.status))

        bounded_ok = all(took < 4 for took, _ in bounded)
        blocked = ended > CLIENT_TIMEOUT - 2 and all(
            took > CLIENT_TIMEOUT - 8 for took, _ in unbounded)
        if blocked and status == "closed" and bounded_ok:
            return (f"BUG PRESENT: unbounded calls blocked until {ended:.1f} s after the "
                    f"kill (Client timeout={CLIENT_TIMEOUT}), then failed and the client "
                    "was closed for good; callback_timeout=2 bounded the same calls to "
                    f"{max(t for t, _ in bounded):.1f} s")
        return (f"NOT REPRODUCED: unbounded calls ended {ended:.1f} s after the kill, "
                f"status {status!r}, bounded calls took {[round(t, 1) for t, _ in bounded]}")
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=5)


def on_alarm(signum, frame):
    raise TimeoutError(f"script exceeded {HARD_LIMIT} s")


if __name__ == "__main__":
    print("distributed", distributed.__version__)
    for name in ["distributed", *logging.root.manager.loggerDict]:
        if name.startswith("distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
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
