"""The library never waits for workers in silence (issue 11): while the cluster has none,
it emits `WaitingForWorkers` and logs a warning; `worker_wait_timeout` ends the wait with
every unfinished task reported failed; workers that come back end it with
`WorkersReturned`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from distributed import Client, LocalCluster

from resilience import ResilientCluster, TaskFailures
from resilience.events import WaitingForWorkers, WorkersReturned
from tests.resilience.kit import logged


def quick(payload: Any, **_: Any) -> Any:
    time.sleep(0.02)
    return payload


@pytest.fixture
def workerless() -> Iterator[tuple[LocalCluster, Client]]:
    with LocalCluster(n_workers=0, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster, timeout="5s") as client:
        yield cluster, client


@pytest.mark.parametrize("scatter", [True, False])
def test_a_wait_for_workers_is_announced_and_bounded(workerless, scatter):
    _, client = workerless
    seen: list[Any] = []
    rc = ResilientCluster(client, [{"task_id": i} for i in range(3)], input="x",
                          scatter=scatter, task_registry="memory", worker_wait_timeout=1.5,
                          on_event=seen.append)
    with logged(level=logging.WARNING) as warnings, pytest.raises(TaskFailures) as raised:
        rc.distribute(quick)

    waits = [e for e in seen if isinstance(e, WaitingForWorkers)]
    assert len(waits) == 1 and waits[0].unfinished == 3 and waits[0].timeout == 1.5
    assert any("no workers" in message for message in warnings), warnings
    assert set(raised.value.failed) == {0, 1, 2}


def test_workers_that_come_back_end_the_wait(workerless):
    cluster, client = workerless
    seen: list[Any] = []
    rc = ResilientCluster(client, [{"task_id": i} for i in range(2)], input="x",
                          scatter=False, worker_wait_timeout=60, on_event=seen.append)

    def add_a_worker_once_waiting() -> None:
        deadline = time.monotonic() + 30
        while not any(isinstance(e, WaitingForWorkers) for e in seen):
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        cluster.scale(1)

    helper = threading.Thread(target=add_a_worker_once_waiting, daemon=True)
    helper.start()
    try:
        summary = rc.distribute(quick)
    finally:
        helper.join(timeout=35)
    assert summary.delivered == 2
    returned = [e for e in seen if isinstance(e, WorkersReturned)]
    assert len(returned) == 1 and returned[0].waited > 0


@pytest.mark.parametrize("scatter", [True, False])
def test_a_durable_run_without_workers_reports_every_task_and_resumes_them_all(
        workerless, tmp_path, scatter):
    # Five tasks, room for two: a wait for workers that times out must report the two
    # in flight, and the three never started; resumed with room for one, the second
    # resumed step is still on the registry's pages and must be reported too. None is
    # failed for good: with a worker, the same run then delivers all five. Scattered
    # inputs end alike (their scatters fail rather than their steps wait): they once
    # failed one admitted batch per round instead.
    cluster, client = workerless

    def session(max_in_flight: int, wait: float = 1.0) -> ResilientCluster:
        return ResilientCluster(client, [{"task_id": i} for i in range(5)], input="x",
                                scatter=scatter, task_registry="disk",
                                output_path=str(tmp_path / "out"),
                                max_in_flight=max_in_flight, worker_wait_timeout=wait)

    with pytest.raises(TaskFailures) as first:
        session(max_in_flight=2).distribute(quick)
    assert set(first.value.failed) == {0, 1, 2, 3, 4}
    never = {i for i, reason in first.value.failed.items() if reason.startswith("never started")}
    assert never == {2, 3, 4}, first.value.failed
    assert "never started: step 0 could not finish: the cluster had no workers" \
        in first.value.failed[2]

    with pytest.raises(TaskFailures) as resumed:
        session(max_in_flight=1).distribute(quick)
    assert set(resumed.value.failed) == {0, 1, 2, 3, 4}

    cluster.scale(1)
    client.wait_for_workers(1, timeout=30)
    summary = session(max_in_flight=5, wait=30).distribute(quick)
    assert summary.delivered == 5
