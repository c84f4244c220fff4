"""Scheduler loss on the `processes` backend: a durable run whose scheduler is SIGKILLed
ends with a clear error within a bound (no hang); the same run started again against a
new scheduler and new workers resumes and delivers every output exactly once. And in a
harness run, where a new scheduler comes back a second later (as in a campaign), the
library rides it out: every output delivered exactly once. A client whose reconnection
Dask ended on an error it does not retry ends the run at once, saying so."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest
from distributed import Client

from chaos import Workload, check_history, run_schedule
from chaos.campaign.plan import DEPLOY_PINNED
from chaos.errors import ClusterError
from chaos.harness.backends import ProcessesBackend
from resilience import ResilientCluster, SchedulerLost, scheduler_watch
from resilience.scheduler_watch import SchedulerWatch
from resilience.watch import find_forgotten

N_TASKS = 12
SCHEDULER_TIMEOUT = 4.0


def slow_step(payload, *, task_id, **kwargs):
    time.sleep(0.4)
    return [f"{payload}|{task_id}|{i}" for i in range(2)]


def relax(payload, **kwargs):
    time.sleep(0.05)
    return payload + "|relaxed"


def durable_run(client, out):
    return ResilientCluster(client, [{"task_id": i} for i in range(N_TASKS)], input="pose",
                            task_registry="disk", output_path=str(out), max_task_replicas=2,
                            scheduler_timeout=SCHEDULER_TIMEOUT)


def test_a_killed_scheduler_ends_the_run_clearly_and_a_rerun_delivers_each_output_once(
        deploy, tmp_path):
    out = tmp_path / "run"
    outcome: dict = {}
    delivered = threading.Event()

    def first_session() -> None:
        try:
            for _ in durable_run(deploy.client, out).generate([slow_step, relax]):
                delivered.set()
        except BaseException as error:  # what the head node's script would see
            outcome["error"] = error
        outcome["ended"] = time.monotonic()

    session = threading.Thread(target=first_session, daemon=True)
    session.start()
    assert delivered.wait(60), f"no output before the scheduler was to be killed: {outcome}"
    pid, why = deploy.kill_scheduler(restart_after=None)
    assert pid is not None, why
    killed = time.monotonic()
    session.join(SCHEDULER_TIMEOUT + 40)
    assert not session.is_alive(), "the run hung after its scheduler died:\n" + "".join(
        traceback.format_stack(sys._current_frames()[session.ident]))
    error = outcome["error"]
    assert isinstance(error, SchedulerLost), repr(error)
    assert outcome["ended"] - killed < SCHEDULER_TIMEOUT + 30
    assert "scheduler was unreachable" in str(error) and "rerun" in str(error)
    assert error.failed, "the unfinished tasks are named"

    # A new scheduler (same address) and new `dask worker` processes; a new head-node client.
    deploy.backend.restart_scheduler(timeout=60)
    deploy._hook_scheduler()
    deploy.settle(timeout=90)
    with Client(deploy.backend.address, security=deploy.backend.security) as client:
        summary = durable_run(client, out).distribute([slow_step, relax])
    assert summary.previously_delivered > 0 and not summary.failed

    expected = {(task, (branch, 0)) for task in range(N_TASKS) for branch in range(2)}
    lines = [json.loads(line) for line in (out / "scores.json").read_text().splitlines()]
    written = [(line["task_id"], tuple(line["index"])) for line in lines]
    assert len(written) == len(set(written)), "an output was written twice"
    assert set(written) == expected
    files = sorted(path.name for path in out.glob("*.pkl"))
    assert len(files) == len(expected)


def test_what_the_library_asks_a_scheduler_that_died_is_given_up_within_its_bound(
        deploy, monkeypatch):
    """CI, once: the run above outlived its killed scheduler by 40 s and more, asking it
    which keys a failed scatter had orphaned. Dask's client holds such a call until it
    gives up reconnecting (the client's timeout: 60 s here), and then closes."""
    monkeypatch.setattr(scheduler_watch, "CALL_BOUND", 2.0)
    pid, why = deploy.kill_scheduler(restart_after=None)
    assert pid is not None, why
    try:
        deadline = time.monotonic() + 10
        while deploy.client.status == "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert deploy.client.status == "connecting", deploy.client.status
        started = time.monotonic()
        assert find_forgotten(deploy.client, ["a-key"]) == []  # "cannot say", at once
        with pytest.raises(TimeoutError):
            scheduler_watch.worker_addresses(deploy.client)
        took = time.monotonic() - started
        assert took < 2 * 2.0 + 3, f"two questions to a dead scheduler took {took:.0f} s"
        assert deploy.client.status == "connecting", "the client gave up meanwhile"
    finally:
        deploy.backend.restart_scheduler(timeout=60)
        deploy._hook_scheduler()
        deploy.settle(timeout=90)


def test_a_scheduler_killed_mid_run_and_restarted_is_ridden_out_by_a_disk_registry(
        deploy, caplog):
    [kill] = [s for s in DEPLOY_PINNED if s.faults[0].kind == "scheduler-kill"]
    workload = Workload(seed=0)
    caplog.set_level(logging.INFO, logger="resilience")
    # The new scheduler gets no worker of the old one: the harness refills the fleet
    # during the run, and the library puts its replica guard on the new scheduler and
    # resubmits what it forgot at once. 30 s is 4x what that takes on a busy host; a
    # library that waits out its replica or limbo timeouts (10 s a round) hangs past it.
    record = run_schedule(kill, "resilience",
                          {"task_registry": "disk", "max_task_replicas": 2}, workload, deploy,
                          timeout=30)
    [fault] = record.events("fault")
    assert fault["kind"] == "scheduler-kill" and fault["error"] is None
    assert record.status == "completed", record.error
    verdict = check_history(record.history, workload.oracle())
    assert verdict.outcome == "valid", verdict
    assert any(e["reason"] == "lost-input" for e in record.events("submit")), "nothing lost"
    unguarded = [r.getMessage() for r in caplog.records if "lack copies" in r.getMessage()]
    assert not unguarded, f"placements waited for copies nobody made: {unguarded}"


def test_a_new_scheduler_is_noticed_even_when_no_check_saw_the_old_one_go(deploy):
    watch = SchedulerWatch(deploy.client, timeout=60)
    assert watch.check() == "running"
    pid, why = deploy.kill_scheduler(restart_after=0.5)
    assert pid is not None, why
    deadline = time.monotonic() + 60  # the client reconnects to the new one by itself
    while deploy.client.status == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    while deploy.client.status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert deploy.client.status == "running", "the client did not reconnect"
    # No check ran while the client was disconnected (a run loop busy for seconds).
    assert watch.check() == "back"
    assert watch.check() == "running"


def test_a_client_that_stopped_reconnecting_ends_the_run_at_once_saying_why():
    # Dask's client reconnects inside the task that reads its scheduler's reports, and
    # retries only OSError. Over TLS, a connection closed before its handshake raises
    # ValueError ("IOStream is not idle"): the task ends, and the client stays
    # "connecting" for ever, even once a scheduler is back. A listener that accepts and
    # closes (a proxy with no backend; here a squatter on the port) is enough. Its own
    # cluster: the module's client would be lost with it.
    root = str(Path(__file__).resolve().parents[2])
    backend = ProcessesBackend(1, env={"PYTHONPATH": root})
    client = backend.client
    outcome: dict = {}

    def run() -> None:
        rc = ResilientCluster(client, [{"task_id": i} for i in range(4)], input="pose",
                              task_registry="memory", scheduler_timeout=30)
        try:
            for _ in rc.generate([one_second_step]):
                pass
        except BaseException as error:
            outcome["error"] = error
        outcome["ended"] = time.monotonic()

    session = threading.Thread(target=run, daemon=True)
    try:
        session.start()
        wait_for_step(client, timeout=30)
        port = int(backend.address.rsplit(":", 1)[1])
        pid, why = backend.kill_scheduler()
        assert pid is not None, why
        report = client._handle_report_task
        with _turning_connections_away(port):
            deadline = time.monotonic() + 20
            while not report.done() and time.monotonic() < deadline:
                time.sleep(0.05)
        assert report.done(), "the client kept reconnecting: the test tested nothing"
        deaf = time.monotonic()
        # A scheduler back at its address changes nothing; the harness says why.
        with pytest.raises(ClusterError, match=r"will never reconnect.*IOStream"):
            backend.restart_scheduler(timeout=20)
        assert time.monotonic() - deaf < 10, "the restart waited out its timeout"
        session.join(timeout=40)
        assert not session.is_alive(), "the run waited on a client that had stopped"
        assert client.status == "connecting"
    finally:
        backend.close()
        session.join(timeout=10)
    # Else its every close, the one at garbage collection too, raised the ValueError.
    assert client.status == "closed", "the backend could not close the deaf client"
    error = outcome["error"]
    assert isinstance(error, SchedulerLost), repr(error)
    assert "no longer hears its scheduler" in str(error) and "IOStream" in str(error)
    assert error.failed
    assert outcome["ended"] - deaf < 5, "it waited for scheduler_timeout (30 s)"


def one_second_step(payload, *, task_id, **kwargs):
    time.sleep(1.0)
    return payload


def wait_for_step(client, timeout: float) -> None:
    """Until one of the run's steps is processing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = client.run_on_scheduler(lambda dask_scheduler: [
            ts.state for key, ts in dask_scheduler.tasks.items() if str(key).startswith("rs-")])
        if "processing" in states:
            return
        time.sleep(0.05)
    raise AssertionError("no step of the run started")


@contextlib.contextmanager
def _turning_connections_away(port: int):
    """A listener on `port` that accepts each connection and closes it at once."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.05)
    stop = threading.Event()

    def turn_away() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):  # TimeoutError among them
                listener.accept()[0].close()

    thread = threading.Thread(target=turn_away, daemon=True, name="turn-away")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.fixture(autouse=True)
def _quiet_reconnects():
    yield
