"""The `slurm` backend: workers are SLURM jobs, started by dask-jobqueue's SLURMCluster.

The scheduler runs in this process (as SLURMCluster runs it); each worker is one
`dask worker --nanny` in a one-core batch job, over a temporary TLS set-up whose files
go to a folder every node sees (one node here: a temporary folder). Needs a SLURM that
answers (`deploy/slurm-single-node.sh` starts one on this host) and the `deploy` extra.

A preemption is SLURM's own: `scontrol requeue` sends the job's processes SIGTERM,
SIGKILL `KillWait` seconds later, and puts the job back in the queue. The notice is
therefore SLURM's KillWait, not the schedule's (run-start's `cluster` records it). SLURM
holds a requeued job back 120 s, which the backend lifts (`StartTime=now`): the same
job brings a worker back, as a cluster that preempts with PreemptMode=REQUEUE does.
Other faults go through the nannies. A worker whose job ended for good (nanny-close,
retire) is replaced by a new job between runs. The scheduler cannot be killed.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import dask

from chaos.errors import ClusterError
from chaos.harness import scheduler_calls
from chaos.harness.backends.base import LOST_WORKER_TIMEOUT, ClosingClient, ClusterBackend
from chaos.harness.inflict import Landing, Victim
from resilience.scheduler_watch import ask_scheduler

REQUEUE_WAIT = 30.0  # seconds for a requeued job to be back in the queue


class SlurmBackend(ClusterBackend):
    """A SLURMCluster of one-core jobs, owned: `close` cancels every job it submitted."""

    name: ClassVar[str] = "slurm"
    refill: ClassVar[str] = ("SLURM requeues a preempted worker's job (started at once); a "
                             "job that ended for good is replaced by a new one between runs")

    def __init__(self, n_workers: int = 3, *, tls: bool = True, queue: str = "debug",
                 worker_ttl: str | None = None, preload: tuple[str, ...] = (),
                 start_timeout: float = 120.0, **_: Any) -> None:
        try:
            from dask_jobqueue.slurm import SLURMCluster
        except ImportError as error:
            raise ClusterError(f"--cluster slurm needs dask-jobqueue ({error}); "
                               "`pip install 'resilience-testbed[deploy]'`.") from None
        if shutil.which("sinfo") is None or not _idle_nodes():
            raise ClusterError("--cluster slurm: no SLURM node answers (`sinfo`); start one "
                               "with deploy/slurm-single-node.sh (root), or use --cluster "
                               "processes.")
        from distributed.security import Security

        self.n_workers = n_workers
        self.kill_wait = _kill_wait()
        self.folder = Path(tempfile.mkdtemp(prefix="chaos-slurm-"))
        self.job_name = f"chaos-{uuid.uuid4().hex[:8]}"
        for sub in ("shared", "logs", "work"):
            (self.folder / sub).mkdir()
        # A requeued job's worker comes back under its old name: SLURMCluster must not
        # cancel the job meanwhile (after 15 s, by default; see LOST_WORKER_TIMEOUT).
        settings: dict[str, Any] = {"distributed.deploy.lost-worker-timeout": LOST_WORKER_TIMEOUT}
        if worker_ttl is not None:
            settings["distributed.scheduler.worker-ttl"] = worker_ttl
        self._config = dask.config.set(settings)
        self.security = Security.temporary() if tls else None
        try:
            self.cluster = SLURMCluster(
                job_name=self.job_name, queue=queue, cores=1, processes=1, memory="2GB",
                walltime="02:00:00", python=sys.executable, security=self.security,
                shared_temp_directory=str(self.folder / "shared"),
                log_directory=str(self.folder / "logs"),
                local_directory=str(self.folder / "work"),
                scheduler_options={"dashboard_address": None},
                worker_extra_args=[f for module in preload for f in ("--preload", module)],
            )
            self.cluster.scale(jobs=n_workers)
            self.client = ClosingClient(self.cluster)
            self.client.wait_for_workers(n_workers, timeout=start_timeout)
        except BaseException as error:
            self.close()
            if isinstance(error, Exception):
                raise ClusterError(f"the `slurm` cluster did not start: {error}") from error
            raise

    def preempt(self, victim: Victim, notice: float) -> Landing | None:
        """`scontrol requeue` the victim's job: SIGTERM, KillWait, SIGKILL, requeued."""
        job = self._job_of(victim.address)
        fired = time.time()
        if job is None:
            return Landing("preempt", victim.address, victim.pid, "batch-system", fired, None,
                           f"no SLURM job runs worker {victim.address}")
        done = _slurm("scontrol", "requeue", job)
        if done.returncode != 0:
            return Landing("preempt", victim.address, victim.pid, "batch-system", fired, None,
                           f"scontrol requeue {job}: {done.stderr.strip()}")
        landed = _start_when_pending(job, timeout=self.kill_wait + REQUEUE_WAIT)
        error = None if landed else f"job {job} was not back in the queue in time"
        return Landing("preempt", victim.address, victim.pid, "batch-system", fired, landed,
                       error, killed_after_notice=None)

    def restore_capacity(self, n_workers: int) -> int:
        """Replace workers whose job ended for good (not running, not queued)."""
        cluster = self.cluster
        live = set(_slurm("squeue", "-h", f"--name={self.job_name}", "-o", "%i").stdout.split())
        gone = [name for name, job in list(cluster.workers.items())
                if getattr(job, "job_id", None) and str(job.job_id) not in live]
        for name in gone:
            cluster.worker_spec.pop(name, None)
            cluster.workers.pop(name, None)
        missing = max(0, n_workers - len(cluster.worker_spec))
        if gone or missing:
            cluster.scale(jobs=n_workers)
        return missing

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kill_wait": self.kill_wait, "job_name": self.job_name}

    def close(self) -> None:
        for item in (getattr(self, "client", None), getattr(self, "cluster", None)):
            if item is not None:
                with contextlib.suppress(Exception):  # a requeued job confuses jobqueue
                    item.close(timeout=30)
        _slurm("scancel", f"--name={self.job_name}")
        deadline = time.monotonic() + 30
        while (_slurm("squeue", "-h", f"--name={self.job_name}").stdout.strip()
               and time.monotonic() < deadline):
            time.sleep(0.5)
        self._config.__exit__(None, None, None)
        for key in ("ca_file", "cert", "key"):  # jobqueue's TLS files, deleted on close
            with contextlib.suppress(Exception):
                getattr(getattr(self, "cluster", None), f"_job_{key}").close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _job_of(self, address: str) -> str | None:
        # Asked on the scheduler: Client.scheduler_info() can return the periodic
        # refresh's view, which lists no worker (docs/dask-upstream.md, 5).
        name = ask_scheduler(self.client, scheduler_calls.worker_name, address)
        job = self.cluster.workers.get(name)
        job_id = getattr(job, "job_id", None)
        return str(job_id) if job_id else None


def _slurm(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _idle_nodes() -> bool:
    states = _slurm("sinfo", "-h", "-o", "%T").stdout.split()
    return bool({"idle", "mixed"} & set(states))


def _kill_wait() -> float:
    for line in _slurm("scontrol", "show", "config").stdout.splitlines():
        if line.startswith("KillWait"):
            return float(line.split("=", 1)[1].split()[0])
    return 30.0  # SLURM's default


def _start_when_pending(job: str, timeout: float) -> float | None:
    """Once the requeued job is pending, let it start now (SLURM holds it 120 s); the
    time it was back in the queue, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _slurm("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "PENDING":
            landed = time.time()
            _slurm("scontrol", "update", f"JobId={job}", "StartTime=now")
            return landed
        time.sleep(0.1)
    return None
