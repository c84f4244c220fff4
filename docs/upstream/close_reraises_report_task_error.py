"""Client.close() re-raises the error the client's report task ended with.

Real trigger, no injection: a TLS client is connected to a `dask scheduler` subprocess.
The scheduler is SIGKILLed and its port is taken by a listener that accepts connections
and closes them at once (as a proxy or load balancer with no backend does). The client's
report task tries to reconnect. Over TLS, tornado raises
`ValueError("IOStream is not idle; cannot convert to SSL")` for a connection closed
before the handshake. `Client._reconnect` retries only OSError, so the report task ends
with that ValueError. From then on every `Client.close()` (also the one `Client.__del__`
makes at garbage collection) raises it, and the client's event-loop thread is not stopped.

Run: python docs/upstream/close_reraises_report_task_error.py
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
import weakref
from pathlib import Path

import distributed
from distributed import Client
from distributed.security import Security

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


class AcceptAndClose:
    """A plain TCP listener that accepts each connection and closes it at once."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(50)
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)
        self.sock.close()


def main(folder: Path, procs: list[subprocess.Popen]) -> str:
    sec = Security.temporary()
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_text(sec.tls_scheduler_cert)
    key.write_text(sec.tls_scheduler_key)
    port = free_port()
    log = folder / "scheduler.log"
    with open(log, "wb") as out:
        procs.append(subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--protocol", "tls", "--no-dashboard", "--tls-ca-file", str(cert),
             "--tls-cert", str(cert), "--tls-key", str(key)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    address = wait_for_line(log, r"Scheduler at:\s+(\S+)", 30)
    print("scheduler at", address)

    threads_before = io_loop_threads()
    client = Client(address, security=sec, timeout=15)
    print("client status:", client.status)
    collected = weakref.ref(client)
    runner = client._loop_runner  # to stop the client's loop thread at the end
    listener = None
    try:
        os.killpg(procs[0].pid, signal.SIGKILL)
        procs[0].wait(timeout=10)
        listener = AcceptAndClose(port)
        print("scheduler SIGKILLed; its port now accepts and closes connections")

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            task = client._handle_report_task
            if task is not None and task.done():
                break
            time.sleep(0.1)
        task = client._handle_report_task
        if task is None or not task.done():
            return "NOT REPRODUCED: the report task did not end within 20 s"
        print("report task ended with:", repr(task.exception()), "| client status:",
              client.status)

        report_error = repr(task.exception())
        del task  # it holds the client: let garbage collection reach it below
        raised = []
        for attempt in (1, 2):
            started = time.monotonic()
            try:
                client.close(timeout=10)
                print(f"close #{attempt}: returned, status {client.status}")
            except Exception as error:
                raised.append(repr(error))
                print(f"close #{attempt}: raised {error!r} after "
                      f"{time.monotonic() - started:.1f} s; status {client.status}")
        print("IO loop threads: before the client", threads_before, "| now",
              io_loop_threads())

        # Garbage collection: Client.__del__ calls close() again; an error it raises
        # goes to sys.unraisablehook.
        unraisable = []
        previous_hook = sys.unraisablehook
        sys.unraisablehook = lambda info: unraisable.append(repr(info.exc_value))
        try:
            del client
            gc.collect()
        finally:
            sys.unraisablehook = previous_hook
        print("client garbage-collected:", collected() is None,
              "| errors raised in Client.__del__:", unraisable)
        print("IO loop threads after garbage collection:", io_loop_threads())

        if len(raised) == 2 and all(r == report_error for r in raised):
            return f"BUG PRESENT: every Client.close() re-raised the report task's {report_error}"
        return f"NOT REPRODUCED: close() raised {raised!r}"
    finally:
        if listener is not None:
            listener.close()
        live = collected()
        if live is not None:
            # The project's workaround, so that this script can close the client.
            live._handle_report_task = None
            with contextlib.suppress(Exception):
                live.close(timeout=5)
            del live
        runner.stop(timeout=5)


def on_alarm(signum, frame):
    raise TimeoutError(f"script exceeded {HARD_LIMIT} s")


if __name__ == "__main__":
    print("distributed", distributed.__version__)
    for name in ["distributed", *logging.root.manager.loggerDict]:
        if name.startswith("distributed"):  # Dask logs each error with its traceback
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
    print("IO loop threads after the script's own cleanup:", io_loop_threads())
    print(f"({time.monotonic() - started:.1f} s)")
    print(verdict)
