"""The `processes` backend: a `dask scheduler` and N `dask worker --nanny` processes.

Started from the command line as a batch system would (`python -m dask scheduler`,
`python -m dask worker`), each in a process group of its own, over TLS by default
(a temporary self-signed set-up). `close` stops every group it started, SIGTERM then
SIGKILL, also after a failure; a test's fixture calls it in its teardown.

A worker here is a whole machine: a preemption signals the `dask worker` process (the
nanny) and every process below it. After a worker left for good (preempted, closed,
retired), `restore_capacity` starts a new `dask worker` process once the fleet has been
short for `refill_delay` seconds, as an autoscaler would. After `kill_scheduler`,
`restart_scheduler` starts a new scheduler on the same address; the old workers close
themselves when they lose it, and are replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from distributed import Client

import chaos.harness.scheduler_calls as scheduler_calls
from chaos.errors import ClusterError
from chaos.harness.backends.base import ClosingClient, ClusterBackend
from chaos.harness.backends.tls import TlsFiles, temporary_tls
from chaos.harness.processes import process_tree
from chaos.spec import FaultKind
from resilience.scheduler_watch import hearing_ended

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when the backend stops a group
REFILL_CHECK = 0.2  # seconds between two looks at the fleet (each asks the scheduler)
RESTART_PAUSE = 0.5  # seconds before starting again a restarted scheduler that exited

logger = logging.getLogger(__name__)


@dataclass
class _Process:
    """One process group the backend started: a scheduler or a `dask worker`."""

    role: str
    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float = field(default_factory=time.monotonic)
    seen: bool = False  # its worker has registered with the scheduler

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


class ProcessesBackend(ClusterBackend):
    """Command-line Dask processes on this host, owned and stopped by the harness."""

    name: ClassVar[str] = "processes"
    refill: ClassVar[str] = ("the harness starts a new `dask worker` process once the fleet "
                             "has been short for the refill delay, during runs too")
    refills_during_runs: ClassVar[bool] = True

    def __init__(self, n_workers: int = 3, *, tls: bool = True, threads_per_worker: int = 1,
                 refill_delay: float = 0.0, worker_ttl: str | None = None,
                 preload: tuple[str, ...] = (), start_timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> None:
        self.n_workers = n_workers
        self.local_signals = True
        self.refill_delay = refill_delay
        self.threads_per_worker = threads_per_worker
        self.preload = preload
        self.start_timeout = start_timeout
        self.folder = Path(tempfile.mkdtemp(prefix="chaos-processes-"))
        self.tls: TlsFiles | None = temporary_tls(self.folder / "tls") if tls else None
        self.security = self.tls.security() if self.tls else None
        self.address = f"{'tls' if tls else 'tcp'}://127.0.0.1:{_free_port()}"
        # `dask worker`'s own start method (spawn), not the local backend's forkserver:
        # a preemption SIGTERMs the whole tree, forkserver included, and a nanny whose
        # forkserver died reads its live worker as exited (status 255) and drops it.
        self._env = {**os.environ, **(env or {}),
                     "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD": "spawn"}
        if worker_ttl is not None:
            self._env["DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL"] = worker_ttl
        self._scheduler: _Process | None = None
        self._workers: list[_Process] = []
        self._counter = 0
        self._short_since: float | None = None
        self._next_check = 0.0
        self._refilling = threading.RLock()
        self.client: Client
        try:
            self._start_scheduler()
            self.client = ClosingClient(self.address, security=self.security,
                                 timeout=self.start_timeout)
            for _ in range(n_workers):
                self._start_worker()
            if n_workers:
                self.client.wait_for_workers(n_workers, timeout=self.start_timeout)
        except BaseException as error:
            logs = self.log_tail()
            self.close()
            if isinstance(error, Exception):
                raise ClusterError(f"the `processes` cluster did not start: {error}\n{logs}"
                                   ) from error
            raise

    # ------------------------------------------------------------------ processes

    def _spawn(self, role: str, name: str, arguments: list[str]) -> _Process:
        log = (self.folder / f"{name}.log").open("ab")
        command = [sys.executable, "-m", "dask", role, *arguments]
        # A group of its own: the whole tree is stopped at once, and Ctrl-C in the
        # harness's terminal does not reach it (close() stops it instead).
        popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=self._env, cwd=self.folder,
                                 start_new_session=True)
        return _Process(role, name, popen, log)

    def _tls_flags(self) -> list[str]:
        return self.tls.cli_flags() if self.tls else []

    def _start_scheduler(self) -> None:
        port = self.address.rsplit(":", 1)[1]
        protocol = self.address.split("://", 1)[0]
        self._scheduler = self._spawn("scheduler", "scheduler", [
            "--host", "127.0.0.1", "--port", port, "--protocol", protocol, "--no-dashboard",
            *self._tls_flags()])

    def _start_worker(self) -> _Process:
        self._counter += 1
        name = f"chaos-w{self._counter}"
        process = self._spawn("worker", name, [
            self.address, "--nanny", "--nworkers", "1", "--nthreads",
            str(self.threads_per_worker), "--name", name, "--no-dashboard",
            "--death-timeout", "30", "--local-directory", str(self.folder / name),
            *(flag for module in self.preload for flag in ("--preload", module)),
            *self._tls_flags()])
        self._workers.append(process)
        return process

    # ------------------------------------------------------------------ powers

    def unable(self, kind: FaultKind) -> str | None:
        return None  # it owns every process: it can enact every kind

    def worker_tree(self, pid: int | None) -> list[int]:
        """The whole `dask worker` process tree holding worker process `pid`."""
        if not pid:
            return []
        for process in self._workers:
            if process.alive:
                tree = process_tree(process.popen.pid)
                if pid in tree:
                    return tree
        return []

    def restore_capacity(self, n_workers: int) -> int:
        with self._refilling:  # the harness's refill thread and its settle() both call
            started = self._restore_capacity(n_workers)
            self._reap()
        return started

    def refill_during_run(self, n_workers: int) -> int:
        """Replacements only: the orphans of a dead nanny may be a preemption's tree
        still within its notice, which the fault itself ends."""
        with self._refilling:
            return self._restore_capacity(n_workers)

    def _restore_capacity(self, n_workers: int) -> int:
        now = time.monotonic()
        if now < self._next_check or self._scheduler is None:
            return 0
        self._next_check = now + REFILL_CHECK
        try:
            running = set(self.client.run_on_scheduler(scheduler_calls.running_worker_names))
        except Exception:  # the scheduler is gone or restarting: nothing to decide yet
            return 0
        counted = 0
        for process in self._workers:
            if not process.alive:
                continue
            if process.name in running:
                process.seen = True
                counted += 1
            elif not process.seen and now - process.started < self.start_timeout:
                counted += 1  # still starting
        missing = n_workers - counted
        if missing <= 0:
            self._short_since = None
            return 0
        self._short_since = self._short_since or now
        if now - self._short_since >= self.refill_delay:
            for _ in range(missing):
                self._start_worker()
            self._short_since = None
            return missing
        return 0

    def kill_scheduler(self) -> tuple[int | None, str | None]:
        scheduler = self._scheduler
        if scheduler is None or not scheduler.alive:
            return None, "the scheduler process was already gone"
        _signal_group(scheduler.popen, signal.SIGKILL)
        scheduler.popen.wait(timeout=10)
        return scheduler.popen.pid, None

    def restart_scheduler(self, timeout: float) -> None:
        """A new scheduler on the same address; the client reconnects to it by itself.
        One that exits before the client is back (its port not yet free, say) is started
        again: the run waits for it, and would otherwise wait out its scheduler_timeout
        (a deploy campaign in CI, once: 60 s, then every task reported failed)."""
        if self._scheduler is not None and self._scheduler.alive:
            return
        self._start_scheduler()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.status == "running":
                with contextlib.suppress(Exception):
                    self.client.run_on_scheduler(scheduler_calls.running_worker_names)
                    return
            if (deaf := hearing_ended(self.client)) is not None:
                raise ClusterError(f"the client will never reconnect to {self.address}: "
                                   f"{deaf}")
            if self._scheduler is not None and not self._scheduler.alive:
                logger.warning("the restarted scheduler exited (status %s); starting it "
                               "again\n%s", self._scheduler.popen.returncode,
                               self.log_tail(5))
                time.sleep(RESTART_PAUSE)
                self._start_scheduler()
            time.sleep(0.1)
        raise ClusterError(f"no scheduler answered at {self.address} {timeout:g} s after it "
                           f"was restarted\n{self.log_tail()}")

    def pids(self) -> dict[str, int]:
        """The process-group leaders alive now, by name (the scheduler and each worker)."""
        every = ([self._scheduler] if self._scheduler else []) + self._workers
        return {p.name: p.popen.pid for p in every if p.alive}

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the scheduler's log, for error messages."""
        path = self.folder / "scheduler.log"
        if not path.is_file():
            return ""
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return "scheduler log:\n" + "\n".join(text)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.address, "refill_delay": self.refill_delay}

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            _forget_a_failed_report_task(client)
            with contextlib.suppress(Exception):
                client.close(timeout=5)
        every = [*self._workers, *([self._scheduler] if self._scheduler else [])]
        for process in every:
            _signal_group(process.popen, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in every:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        for process in every:
            _signal_group(process.popen, signal.SIGKILL)  # the group: children too
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=5)
            process.log.close()
        self._workers, self._scheduler = [], None
        shutil.rmtree(self.folder, ignore_errors=True)

    def _reap(self) -> None:
        for process in [p for p in self._workers if not p.alive]:
            _signal_group(process.popen, signal.SIGKILL)  # orphans of a dead nanny
            process.log.close()
            self._workers.remove(process)


def _signal_group(popen: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _forget_a_failed_report_task(client: Client) -> None:
    """Let a deaf client close (see `hearing_ended`). Dask's close awaits the report task
    and raises what it ended with, at every close: the one `Client.__del__` makes at
    garbage collection too, so the error surfaced in whichever test ran then, and the
    client's event loop thread was never stopped."""
    if hearing_ended(client) is not None:
        client._handle_report_task = None
