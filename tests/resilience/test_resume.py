"""Resume after the head node dies: the client is SIGKILLed at random points, rerun, and
the output folder must end with every output exactly once, each equal to its
fault-free value.

Kill points are drawn from a seeded RNG: most during the run itself (submission,
completion, delivery), some earlier (startup, registry open and reconcile). A failure
prints the seed, the kill points and how to replay them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client

from resilience import RegistryError, SQLiteRegistry
from resilience.durable import open_durable_run
from resilience.session_lock import lock_path
from resilience.sink import SCOREFILE, load_output, output_name
from resilience.status import run_status
from tests.resilience import resume_client
from tests.resilience.resume_client import expected_outputs

SCRIPT = Path(__file__).with_name("resume_client.py")
ROOT = Path(__file__).parents[2]
TASKS = 24
RUN_SECONDS = 2.0  # about how long a run takes once started (24 tasks x 3 steps of 50 ms)
EARLY_KILLS = 0.2  # the share of kills that land before the run started
RUN_TIMEOUT = 120.0


class ClientProcess:
    """The client, in its own process group: a kill takes the whole head node."""

    def __init__(self, address: str, output: Path, log: Path) -> None:
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), address, str(output), str(TASKS)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.launched = time.monotonic()

    def kill(self, after: float, after_start: bool) -> None:
        """SIGKILL the process group `after` seconds from launch, or from "started"."""
        since = self._wait_started() if after_start else self.launched
        time.sleep(max(0.0, since + after - time.monotonic()))
        self.stop()
        assert self.process.stdout is not None
        self.process.stdout.close()

    def _wait_started(self) -> float:
        assert self.process.stdout is not None
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            ready = select.select([self.process.stdout], [], [], 0.5)[0]
            if ready and self.process.stdout.readline().startswith(b"started"):
                break
        return time.monotonic()

    def finish(self) -> dict[str, object]:
        """Wait for a run to its end; returns the summary line it printed."""
        assert self.process.stdout is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=RUN_TIMEOUT)
        running = self.process.poll() is None
        self.stop()
        lines = [line for line in self.process.stdout.read().decode().splitlines() if line]
        self.process.stdout.close()
        assert not running, f"the client did not finish within {RUN_TIMEOUT}s: {lines}"
        assert self.process.returncode == 0, (
            f"the client failed ({self.process.returncode}): {lines}; its stderr is in "
            f"{self._log.name}")
        return json.loads(lines[-1])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()


class WorkerKiller:
    """SIGKILLs a random worker of the cluster every few hundred ms (nannies restart them)."""

    def __init__(self, client: Client, rng: random.Random) -> None:
        self._client, self._rng = client, rng
        self._stop = threading.Event()
        self.kills = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._rng.uniform(0.3, 0.9)):
            try:
                pids = list(self._client.run(os.getpid).values())
            except Exception:  # a worker just died: try again next round
                continue
            if len(pids) > 1:  # keep one alive, so the run can progress
                os.kill(self._rng.choice(pids), signal.SIGKILL)
                self.kills += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def kill_and_resume(address: str, output: Path, seed: int, kills: int,
                    tmp_path: Path) -> tuple[dict[str, object], list[str]]:
    rng = random.Random(seed)
    story = []
    for number in range(kills):
        after_start = rng.random() > EARLY_KILLS
        at = rng.uniform(0.0, RUN_SECONDS if after_start else 1.5)
        ClientProcess(address, output, tmp_path / "client.log").kill(at, after_start)
        delivered = len(list(output.glob("*.pkl"))) if output.exists() else 0
        story.append(f"kill {number + 1} {at:.2f}s after {'start' if after_start else 'launch'}"
                     f" ({delivered} output files on disk)")
    summary = ClientProcess(address, output, tmp_path / "client.log").finish()
    print("\n".join(story))
    return summary, story


def check_exactly_once(output: Path, story: list[str], replay: str) -> None:
    where = f"\n{chr(10).join(story)}\nreplay: {replay}"
    expected = expected_outputs(TASKS)
    names = {output_name(task_id, index): value for (task_id, index), value in expected.items()}
    files = {path.name for path in output.iterdir()}
    bookkeeping = {SCOREFILE, "registry.sqlite", "registry.sqlite.key", "registry.sqlite.lock"}
    assert files - bookkeeping == set(names), (
        f"missing {sorted(set(names) - files)}, stray {sorted(files - set(names) - bookkeeping)}"
        + where)
    wrong = {name for name, value in names.items() if load_output(output / name) != value}
    assert not wrong, f"outputs differ from their fault-free values: {sorted(wrong)}" + where

    lines = (output / SCOREFILE).read_text().splitlines()
    keys = [(line["task_id"], tuple(line["index"])) for line in map(json.loads, lines)]
    assert len(keys) == len(set(keys)), f"duplicate scorefile lines: {len(keys)}" + where
    assert set(keys) == set(expected), "the scorefile does not list every output" + where

    status = run_status(output)
    assert (status["outputs_delivered"], status["steps_in_flight"], status["tasks_failed"]) == (
        len(expected), 0, 0), f"status: {status}" + where


def seeds(default: list[int]) -> list[int]:
    """RESUME_SEEDS=7,8 replays chosen seeds."""
    chosen = os.environ.get("RESUME_SEEDS")
    return [int(seed) for seed in chosen.split(",")] if chosen else default


@pytest.fixture
def output(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "out"


@pytest.mark.parametrize("seed", seeds([11, 12]))
def test_killed_clients_resume_to_exactly_once_outputs(client, output, tmp_path, seed):
    summary, story = kill_and_resume(client.scheduler.address, output, seed, 3, tmp_path)

    check_exactly_once(output, story, f"RESUME_SEEDS={seed} pytest {__file__} -k "
                                      "killed_clients_resume")
    assert summary["failed"] == {}


@pytest.mark.parametrize("seed", seeds([21]))
def test_killed_clients_resume_while_workers_are_killed_too(client, output, tmp_path, seed):
    killer = WorkerKiller(client, random.Random(seed))
    try:
        summary, story = kill_and_resume(client.scheduler.address, output, seed, 3, tmp_path)
    finally:
        killer.stop()
    story.append(f"({killer.kills} worker kills meanwhile)")

    check_exactly_once(output, story, f"RESUME_SEEDS={seed} pytest {__file__} -k "
                                      "while_workers")
    assert killer.kills > 0, "no worker was killed: the test proved nothing" + str(story)
    assert summary["failed"] == {}


@pytest.mark.parametrize("seed", seeds([31]))
def test_a_head_node_that_owned_its_cluster_resumes_on_a_new_one(output, tmp_path, seed):
    """The client ran the scheduler and workers itself: all die together, and the
    resumed run starts a new LocalCluster."""
    summary, story = kill_and_resume("local", output, seed, 2, tmp_path)

    check_exactly_once(output, story, f"RESUME_SEEDS={seed} pytest {__file__} -k head_node")
    assert summary["failed"] == {}


def test_a_second_session_is_refused_while_the_first_runs_and_resumes_once_it_is_gone(
        client, output, tmp_path):
    # A head node taken for dead that still runs: a second session beside it would redo
    # its unfinished steps and interleave their writes with its own; starting afresh
    # would move its files aside under it.
    first = ClientProcess(client.scheduler.address, output, tmp_path / "client.log")
    registry = output / "registry.sqlite"
    in_use = rf"is in use by another session of this run \(pid {first.process.pid} on "
    try:
        first._wait_started()
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (lock_path(registry).exists() and lock_path(registry).read_text()):
            assert time.monotonic() < deadline and first.process.poll() is None
            time.sleep(0.005)
        with pytest.raises(RegistryError, match=in_use):
            SQLiteRegistry(registry)  # what a session opens first
        with pytest.raises(RegistryError, match=in_use):
            open_durable_run(registry, None, output, [resume_client.fold], iter([]),
                             start_afresh=True)
        assert not list(tmp_path.glob("out.replaced-*"))  # nothing was moved aside
    finally:
        first.stop()  # SIGKILL: its lock goes with it
        assert first.process.stdout is not None
        first.process.stdout.close()

    summary = ClientProcess(client.scheduler.address, output, tmp_path / "client.log").finish()

    check_exactly_once(output, ["a second session refused, then the first killed"],
                       f"pytest {__file__} -k second_session")
    assert summary["failed"] == {}
