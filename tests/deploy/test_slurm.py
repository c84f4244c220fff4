"""On a real single-node SLURM (deploy/slurm-single-node.sh), dask-jobqueue's SLURMCluster
runs the library over TLS while SLURM preempts a worker's job: `scancel --signal=TERM`
(the notice alone), or `scontrol requeue` (SIGTERM, KillWait, SIGKILL, and the same job
back in the queue: SLURM's preemption with PreemptMode=REQUEUE). Every output is
delivered exactly once. Marked `slurm`; skipped where no SLURM answers."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import dask
import pytest
from distributed import Client
from distributed.security import Security

from chaos import AtStep, ChaosCluster, Fault, FaultSchedule, Workload, check_history, run_schedule
from resilience import ResilientCluster

pytestmark = pytest.mark.slurm

N_TASKS = 6
STEP_SECONDS = 1.0


def slow_step(payload, *, task_id, calls, **kwargs):
    with _logged(calls, f"{task_id}-0"):
        time.sleep(STEP_SECONDS)
    return [f"{payload}|{task_id}|{i}" for i in range(2)]


def finish(payload, *, task_id, calls, **kwargs):
    with _logged(calls, f"{task_id}-1"):
        time.sleep(STEP_SECONDS / 2)
    return payload + "|done"


@contextlib.contextmanager
def _logged(folder: str, step: str):
    """One file per execution: `.start` when it began, `.end` once it returned. An
    execution with no `.end` was cut short (its process killed mid-step)."""
    name = Path(folder) / f"{step}-{uuid.uuid4().hex}"
    name.with_suffix(".start").touch()
    yield
    name.with_suffix(".end").touch()


def cut_short(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.start")
                  if not p.with_suffix(".end").exists())


def slurm(*command: str, check: bool = True) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout.strip()


def kill_wait() -> float:
    """SLURM's KillWait, seconds from SIGTERM to SIGKILL: the notice a preemption gives."""
    for line in slurm("scontrol", "show", "config").splitlines():
        if line.startswith("KillWait"):
            return float(line.split("=", 1)[1].split()[0])
    raise AssertionError("scontrol show config names no KillWait")


@pytest.fixture(scope="module")
def _slurm_up() -> None:
    if shutil.which("sinfo") is None:
        pytest.skip("no SLURM here: run deploy/slurm-single-node.sh (root) first")
    states = slurm("sinfo", "-h", "-o", "%T", check=False).split()
    if not {"idle", "mixed"} & set(states):
        pytest.skip(f"no idle SLURM node (sinfo: {states}); run deploy/slurm-single-node.sh")


@contextlib.contextmanager
def slurm_cluster(tmp_path: Path, monkeypatch, *, notice_plugin: bool):
    """A SLURMCluster of 2 one-core jobs over a temporary TLS set-up, with the notice
    plugin preloaded or not; every job of it is cancelled at the end, also after a
    failure."""
    from dask_jobqueue import SLURMCluster

    # The jobs inherit this environment (sbatch --export=ALL): the test's protocols
    # import from this repository, and the notice preload reads its notice from here.
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get(
        "PYTHONPATH")])))
    monkeypatch.setenv("DASK_RESILIENCE__NOTICE__SECONDS", str(kill_wait()))
    name = f"chaos-{uuid.uuid4().hex[:8]}"
    for folder in ("shared", "logs", "work"):
        (tmp_path / folder).mkdir()
    # The README's set-up: SIGTERM becomes a retirement within KillWait.
    preload = (["--preload", "resilience.notice", "--preload-nanny", "resilience.notice"]
               if notice_plugin else [])
    # A requeued job's worker comes back under its old name; give it time to.
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "120s"}):
        cluster = SLURMCluster(
            job_name=name, queue="debug", cores=1, processes=1, memory="2GB",
            walltime="00:10:00", python=sys.executable, security=Security.temporary(),
            shared_temp_directory=str(tmp_path / "shared"),
            log_directory=str(tmp_path / "logs"), local_directory=str(tmp_path / "work"),
            scheduler_options={"dashboard_address": None}, worker_extra_args=preload,
        )
        try:
            cluster.scale(jobs=2)
            with Client(cluster) as client:
                client.wait_for_workers(2, timeout=120)
                yield cluster, client
        finally:
            with contextlib.suppress(Exception):  # a requeued job confuses its bookkeeping
                cluster.close(timeout=30)
            slurm("scancel", f"--name={name}", check=False)
            deadline = time.monotonic() + 30
            while slurm("squeue", "-h", f"--name={name}", check=False) and \
                    time.monotonic() < deadline:
                time.sleep(0.5)


@pytest.mark.parametrize(("how", "notice_plugin"), [
    ("scancel-term", False), ("requeue", False), ("requeue", True)],
    ids=["scancel-term", "requeue", "requeue-with-notice-plugin"])
def test_a_slurm_preemption_of_a_busy_worker_loses_and_repeats_no_output(
        _slurm_up, tmp_path, monkeypatch, how, notice_plugin):
    calls = tmp_path / "calls"  # one node: the jobs write where the test reads
    calls.mkdir()
    with slurm_cluster(tmp_path, monkeypatch, notice_plugin=notice_plugin) as (cluster, client):
        outputs, events, job, address = _run_through_a_preemption(cluster, client, how, calls)
        if how == "requeue":
            assert "Restarts=1" in slurm("scontrol", "show", "job", job)
        retired = [message for _, message in client.get_events("all")
                   if isinstance(message, dict) and message.get("action") == "retire-workers"
                   and address in message.get("retired", ())]
    # With the plugin, SIGTERM became a retirement through the scheduler.
    assert bool(retired) is notice_plugin, retired
    counts = Counter((output.task_id, output.index) for output in outputs)
    expected = {(task, (branch, 0)) for task in range(N_TASKS) for branch in range(2)}
    assert set(counts) == expected and set(counts.values()) == {1}, counts
    again = [e for e in events if type(e).__name__ == "StepSubmitted" and e.attempt > 1]
    if notice_plugin:
        # The busy worker finished its step within KillWait and handed its data over.
        assert not cut_short(calls) and not again, (cut_short(calls), again)
    # Without the plugin, `dask worker` closes the busy worker without retiring it: what
    # it held is lost and recomputed (by Dask, or resubmitted by the library), or, when
    # the client had fetched it all just before, nothing is. Either way: once.


def _run_through_a_preemption(cluster, client, how: str,
                              calls: Path) -> tuple[list, list, str, str]:
    outputs: list = []
    events: list = []
    errors: list = []
    tasks = [{"task_id": i, "calls": str(calls)} for i in range(N_TASKS)]
    run = ResilientCluster(client, tasks, input="pose",
                           task_registry="memory", on_event=events.append)

    def consume() -> None:
        try:
            outputs.extend(run.generate([slow_step, finish]))
        except BaseException as error:  # reported below
            errors.append(error)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    job, address = _busy_job(cluster, client)
    if how == "scancel-term":  # the notice alone: SIGTERM to the job's every process
        slurm("scancel", "--signal=TERM", "--full", job)
    else:  # SIGTERM, KillWait, SIGKILL, then back to the queue
        slurm("scontrol", "requeue", job)
        _start_now_when_pending(job)  # else SLURM holds a requeued job back 120 s
    consumer.join(timeout=180)
    assert not consumer.is_alive(), "the run did not end within 180 s"
    assert not errors, errors
    assert address not in client.nthreads(), "the preempted worker stayed"
    return outputs, events, job, address


def _busy_job(cluster, client, timeout: float = 60.0) -> tuple[str, str]:
    """The SLURM job id and address of a worker running a step right now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [address for address, keys in client.processing().items() if keys]
        identity = client.sync(client.scheduler.identity, n_workers=-1)  # not a cached view
        names = {a: w["name"] for a, w in identity["workers"].items()}
        for address in busy:
            job = cluster.workers.get(names.get(address))
            if job is not None and job.job_id:
                return str(job.job_id), address
        time.sleep(0.05)
    raise AssertionError(f"no worker was running a step within {timeout:g} s")


def _start_now_when_pending(job: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if slurm("squeue", "-h", "-j", job, "-o", "%T", check=False) == "PENDING":
            slurm("scontrol", "update", f"JobId={job}", "StartTime=now")
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job} was not requeued within {timeout:g} s")


def test_the_harness_slurm_backend_preempts_with_a_requeue_and_the_library_delivers_once(
        _slurm_up, monkeypatch):
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get(
        "PYTHONPATH")])))
    workload = Workload(n_tasks=6, n_steps=2, step_seconds=0.5, seed=2)
    schedule = FaultSchedule((Fault("preempt", AtStep(step=1, nth=2, fraction=0.5)),))
    with ChaosCluster.open("slurm", 2) as cluster:
        record = run_schedule(schedule, "resilience", {"task_registry": "memory"}, workload,
                              cluster, timeout=120)
        start = record.history[0]["cluster"]
        [fault] = record.events("fault")
        snapshot = cluster.settle(timeout=120)  # the requeued job's worker is back
    assert (start["backend"], start["tls"], start["kill_wait"]) == ("slurm", True, kill_wait())
    assert (fault["kind"], fault["mechanism"], fault["error"]) == ("preempt", "batch-system",
                                                                 None)
    assert fault["landed_at"] is not None
    assert len(snapshot.workers) == 2
    verdict = check_history(record.history, workload.oracle())
    assert verdict.outcome == "valid", verdict
    assert not slurm("squeue", "-h", f"--name={start['job_name']}", check=False), "jobs left"
