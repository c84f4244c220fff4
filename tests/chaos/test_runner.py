"""The runner: bounded runs, a well-formed history, replayable schedules, a clean cluster."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid

import pytest

import chaos.harness.cluster as cluster_module
from chaos import (
    AtStep,
    ChaosCluster,
    Fault,
    FaultSchedule,
    ProbePlan,
    ResultReady,
    read_history,
    run_schedule,
)
from chaos.errors import ClusterError
from chaos.harness.processes import process_state
from chaos.history import HISTORY_VERSION
from chaos.probes import probed
from tests.chaos.kit import (
    delivered,
    one_fault,
    stop_writing_to_the_client,
    write_to_the_client_again,
)

REQUIRED = {  # docs/history.md: the fields each event type must carry
    "run-start": {"run_id", "target", "config", "schedule", "workload", "seed", "versions",
                  "git_commit", "workers"},
    "submit": {"task_id", "index", "step", "attempt", "key", "reason"},
    "invoke": {"task_id", "index", "step", "key", "worker", "pid", "execution"},
    "probe": {"execution", "step", "fraction"},
    "ok": {"execution", "n_outputs", "duration"},
    "info": {"execution", "reason"},
    "fault": {"fault_id", "kind", "trigger", "worker", "pid", "fired_at", "landed_at",
              "noticed_at"},
    "deliver": {"task_id", "index", "digest", "attempts"},
    "run-end": {"status", "makespan", "error"},
}


def test_a_run_writes_a_well_formed_history(harness, workload, tmp_path):
    schedule = FaultSchedule((Fault("sigkill", AtStep(step=1, fraction=0.5, task="t1")),))
    record = run_schedule(schedule, "resilience", {"task_registry": "memory"}, workload, harness,
                          out=tmp_path, timeout=60)
    history = read_history(tmp_path)
    assert history == record.history
    assert [e["seq"] for e in history] == list(range(len(history)))
    assert history[0]["type"] == "run-start" and history[-1]["type"] == "run-end"
    for event in history:
        assert REQUIRED.get(event["type"], set()) <= set(event), event
    start = history[0]
    assert start["config"]["task_registry"] == "memory"
    assert FaultSchedule.from_dict(start["schedule"]) == schedule
    assert start["versions"]["history"] == HISTORY_VERSION and len(start["workers"]) == 3
    # Exactly one outcome for every invoke, as the format promises.
    outcomes: dict[str, int] = {}
    for event in history:
        if event["type"] == "invoke":
            outcomes.setdefault(event["execution"], 0)
        elif event["type"] in ("ok", "fail", "info"):
            outcomes[event["execution"]] += 1
    assert outcomes and set(outcomes.values()) == {1}
    assert delivered(record) == set(workload.oracle())


def test_replaying_a_saved_schedule_gives_the_same_fault_points(harness, workload, tmp_path):
    schedule = FaultSchedule((
        Fault("sigkill", AtStep(step=0, fraction=0.5, task="t1")),
        Fault("exit", ResultReady(step=1, task="t3")),
        Fault("sigkill", AtStep(step=1, fraction=0.25, task="t2")),
    ), seed=8)
    config = {"task_registry": "memory"}
    first = run_schedule(schedule, "resilience", config, workload, harness, timeout=60)
    saved = FaultSchedule.load(schedule.save(tmp_path / "schedule.json"))
    again = run_schedule(saved, "resilience", config, workload, harness, timeout=60)
    assert first.fault_points() == [
        ("f0", "sigkill", "at-step", "t1", 0, 0.5, "progress"),
        ("f1", "exit", "result-ready", "t3", 1, 1.0, "result"),
        ("f2", "sigkill", "at-step", "t2", 1, 0.25, "progress"),
    ]
    assert again.fault_points() == first.fault_points()


def test_a_hung_run_becomes_the_verdict_hung_and_leaves_no_frozen_worker(
    harness, workload, tmp_path
):
    # A worker frozen for good is seen by the scheduler only through worker-ttl (minutes),
    # so raw Dask waits forever on the task held there: the runner must cut it short.
    schedule = FaultSchedule((Fault("freeze", AtStep(step=0, fraction=0.5, task="t0")),))
    record = run_schedule(schedule, "dask-raw", None, workload, harness, timeout=2,
                          out=tmp_path)
    assert record.status == "hung"
    assert record.history[-1]["type"] == "run-end" and record.history[-1]["status"] == "hung"
    # Where it hung, for whoever reads the run folder: the target's thread among others.
    assert "hung-stacks.txt" in record.error
    stacks = (tmp_path / "hung-stacks.txt").read_text()
    assert "--- thread chaos-target" in stacks
    fault = one_fault(record)
    # And what the scheduler knew: the task it waited on, processing on the frozen worker;
    # then the workers' own view, each on its own bound (the frozen one cannot answer).
    scheduler, workers = (
        [json.loads(line) for line in section.splitlines()[1:]]
        for section in stacks.split("--- scheduler:")[1].split("--- workers:"))
    assert {"state": "processing", "processing_on": fault["worker"]}.items() <= next(
        entry for entry in scheduler if entry.get("processing_on") == fault["worker"]).items()
    assert fault["worker"] in [entry.get("worker") for entry in scheduler]
    views = {view["worker"]: view["keys"] for view in workers}
    assert views.pop(fault["worker"]) == "no answer (TimeoutError)"
    assert len(views) == 2 and all(isinstance(keys, dict) for keys in views.values())
    assert fault["noticed_at"] is None
    [ended] = record.events("fault-ended")
    assert (ended["fault_id"], ended["how"]) == ("f0", "sigkill")
    # The next run gets the full cluster back (the `cluster` fixture checks no process
    # is left stopped).
    after = run_schedule(FaultSchedule(), "dask-raw", None, workload, harness, timeout=30)
    assert after.status == "completed" and len(after.history[0]["workers"]) == 3
    assert delivered(after) == set(workload.oracle())


def test_a_protocol_error_is_reported_by_the_probe_as_fail(harness):
    run_id = uuid.uuid4().hex
    listener = _Collector()

    def broken(payload, **task):
        raise ValueError(f"bad input {payload!r} for {task['task_id']}")

    [protocol] = probed([broken], ProbePlan(run_id, topic=harness.topic))
    harness.attach(run_id, listener)
    try:
        future = harness.client.submit(protocol, 7, task_id="tx", pure=False)
        assert isinstance(future.exception(timeout=30), ValueError)
        assert harness.probes.flush(run_id, listener.flushed, exclude=lambda address: False,
                                    timeout=10)
    finally:
        harness.detach()
    reports = [m for m in listener.received if m["type"] != "flush"]
    assert [m["type"] for m in reports] == ["invoke", "fail"]
    assert (reports[0]["task_id"], reports[0]["step"]) == ("tx", 0)
    assert "ValueError: bad input 7 for tx" in reports[1]["error"]
    assert json.dumps(reports)  # plain data, as the history needs


class _Collector:
    """A run listener that keeps what the probes report."""

    def __init__(self) -> None:
        self.received: list[dict] = []

    def on_worker_event(self, message: dict) -> None:
        self.received.append(message)

    def on_cluster_event(self, when: float, message: dict) -> None:
        pass

    def flushed(self, token: str) -> bool:
        return any(m.get("token") == token for m in self.received)


def test_settling_clears_tasks_another_client_left_behind(harness):
    from distributed import Client

    with Client(harness.cluster) as other:
        stuck = other.submit(time_sleep, 60, pure=False)
        other.wait_for_workers(1, timeout=30)
        while stuck.status == "pending" and not harness.refresh().n_tasks:
            time.sleep(0.01)  # wait until the scheduler has the task
        snapshot = harness.settle(timeout=30)
        assert snapshot.n_tasks == 0 and len(snapshot.workers) == 3


def _forget_the_client(client_id: str, dask_scheduler=None) -> None:
    dask_scheduler.clients.pop(client_id)


def _register_the_client_again(client_id: str, dask_scheduler=None) -> None:
    from distributed.scheduler import ClientState

    dask_scheduler.clients[client_id] = ClientState(client_id)  # as add_client does


def test_settling_clears_keys_a_reconnection_race_left_wanted_by_no_listed_client(harness):
    # Seen in a deploy campaign and reproduced with real processes: a scatter reaches a
    # new scheduler before its client's register-client. The scatter's
    # client_desires_keys makes a ClientState for a client the scheduler does not know
    # yet; add_client then replaces it, and nothing releases the keys it wants any more
    # (distributed ignores the client's own releases for them). The same order here:
    client = harness.client
    client.run_on_scheduler(_forget_the_client, client.id)  # a new scheduler
    scattered = client.scatter("an input", hash=False)  # the racing scatter
    client.run_on_scheduler(_register_the_client_again, client.id)  # the reconnection
    del scattered
    snapshot = harness.settle(timeout=10)
    assert snapshot.n_tasks == 0


def test_settling_ends_the_campaign_when_results_stop_reaching_the_client(
    harness, monkeypatch
):
    # A nightly campaign's cluster, after a hard reset that took a minute, ran every
    # task and told its client of none: each of the runs after it hung (60 s, then
    # another reset). Here the scheduler stops writing to the client, whose comm it
    # drops: settling resets once, then says so rather than let each run hang.
    # The reset is recorded, not run: a real one sometimes mends this made-up silence
    # (the client reconnects), where the nightly's reset did not.
    monkeypatch.setattr(cluster_module, "RESULT_WAIT", 1.0)
    resets: list[bool] = []
    monkeypatch.setattr(harness, "hard_reset", lambda: resets.append(True))
    client = harness.client
    client.run_on_scheduler(stop_writing_to_the_client, client.id)
    client.loop.add_callback(client._heartbeat)  # the silence outlasts a client heartbeat
    try:
        with pytest.raises(ClusterError, match="no result of a trivial task within 1 s"):
            harness.settle(timeout=30)
    finally:
        client.run_on_scheduler(write_to_the_client_again, client.id)
        monkeypatch.undo()
    assert resets == [True]  # one reset first
    assert len(harness.settle(timeout=30).workers) == 3  # the next run's cluster is whole


def test_settling_names_a_client_that_no_longer_hears_its_scheduler():
    # Dask's client reads results in one task, never started again once it ends (here on
    # the scheduler's "stream-closed"): no reset mends that, and settling says so at once.
    # Its own cluster: the session's client would stay deaf.
    with ChaosCluster.local(1) as own:
        own.client.run_on_scheduler(close_report_stream, own.client.id)
        started = time.monotonic()
        with pytest.raises(ClusterError, match="no longer hears its scheduler"):
            own.settle(timeout=30)
        assert time.monotonic() - started < 5


def close_report_stream(client_id: str, dask_scheduler=None) -> None:
    dask_scheduler.client_comms[client_id].send({"op": "stream-closed"})


def time_sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_settling_waits_out_a_worker_on_its_way_out(harness):
    # CI once started a run on 4 workers: a worker the LocalCluster had already let go
    # of (its replacement up) was still registered at the scheduler. Here a `dask
    # worker` outside the LocalCluster's spec plays that worker: it joins, then closes
    # itself 3 s later; a run must not start beside it.
    import subprocess
    import sys

    address = harness.client.scheduler.address
    extra = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                              "--no-nanny", "--nthreads", "1", "--lifetime", "3s"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(harness.refresh().workers) < 4:
            assert time.monotonic() < deadline and extra.poll() is None, "it never joined"
            time.sleep(0.05)
        snapshot = harness.settle(timeout=30)
        assert len(snapshot.workers) == 3, snapshot.worker_list()
    finally:
        extra.kill()
        extra.wait(timeout=30)


def test_settling_waits_until_a_killed_worker_has_left_the_scheduler(harness):
    # CI once saw a fault-free run begin with a `worker-removed`: the worker killed by
    # the test before was still registered when settling counted its workers.
    victim = sorted(harness.settle(timeout=30).workers.values(), key=lambda v: v.address)[0]
    os.kill(victim.pid, signal.SIGKILL)
    while process_state(victim.pid) not in (None, "Z", "X"):
        time.sleep(0.001)
    snapshot = harness.settle(timeout=30)
    assert victim.pid not in {v.pid for v in snapshot.workers.values()}, snapshot.worker_list()
    assert len(snapshot.workers) == 3
    # Its nanny started it again at its own address (the local backend's fixed ports):
    # a replay meets the workers in the same sorted order, which Dask deals scatters over.
    assert victim.address in snapshot.workers, snapshot.worker_list()


def test_a_killed_worker_comes_back_at_its_own_address_when_a_lower_port_is_free(harness):
    # A CI run saw a killed worker come back at a lower port of the block, which a
    # worker that left for good had freed: Dask's nanny takes the first free port of
    # its list. Here the lowest worker is retired while its port is held, so that its
    # replacement takes a port above the others; then the port is let go.
    workers = sorted(harness.settle(timeout=30).workers.values(), key=lambda v: v.address)
    lowest = ("127.0.0.1", int(workers[0].address.rsplit(":", 1)[1]))
    harness.client.retire_workers([workers[0].address])
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a worker binds
        deadline = time.monotonic() + 10
        while True:
            try:
                holder.bind(lowest)
                break
            except OSError:
                assert time.monotonic() < deadline, f"port {lowest[1]} was never let go"
                time.sleep(0.01)
        holder.listen()
        harness.settle(timeout=30)
    victim = workers[1]
    os.kill(victim.pid, signal.SIGKILL)
    while process_state(victim.pid) not in (None, "Z", "X"):
        time.sleep(0.001)
    snapshot = harness.settle(timeout=30)
    assert victim.address in snapshot.workers, snapshot.worker_list()
    assert f"tcp://127.0.0.1:{lowest[1]}" not in snapshot.workers, snapshot.worker_list()


def _first_holder(client, futures) -> str:
    return sorted(client.who_has(futures[:1]).values())[0][0]


def test_every_run_scatters_its_first_input_where_the_run_it_replays_did(harness):
    # Dask's scatter deals items round robin over the workers sorted by address, from a
    # counter every earlier scatter moved on; a replay must start the deal where its
    # original did, or a worker's death takes other tasks' inputs with it.
    client = harness.client
    first = sorted(harness.settle(timeout=30).workers)[0]
    for extra in (1, 2):  # earlier runs' scatters, one and two items
        client.scatter(["moves the rotation on"] * extra, hash=False)
        harness.settle(timeout=30)
        inputs = client.scatter(["a run's input"] * 3, hash=False)
        assert _first_holder(client, inputs) == first
        del inputs


def test_every_runs_first_submission_begins_a_generation_of_its_own(harness):
    # Dask ranks a submission made less than fifo_timeout (100 ms) after the last
    # generation began with that generation, and a later one after it. The harness
    # submits a check task just before every run: a run's first steps joined its
    # generation or not as the milliseconds fell, so a replay could run its steps in
    # another order than its original (a nightly's run lost 8 outputs, its replays 5).
    client = harness.client
    for _ in range(3):
        harness.settle(timeout=30)
        before = client.run_on_scheduler(_generation)
        step = client.submit(time.sleep, 0, pure=False)
        step.result(timeout=10)
        assert client.run_on_scheduler(_priority, step.key)[1] == before + 1
        del step


def _generation(dask_scheduler=None) -> int:
    return dask_scheduler.generation


def _priority(key, dask_scheduler=None) -> list[float]:
    return list(dask_scheduler.tasks[key].priority)
