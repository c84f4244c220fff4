"""The library never waits for workers in silence (issue 11): while the cluster has none,
it emits `WaitingForWorkers` and logs a warning; `worker_wait_timeout` ends the wait with
every unfinished task reported failed; workers that come back end it with
`WorkersReturned`."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from distributed import Client, LocalCluster

from resilience import ResilientCluster, TaskFailures
from resilience.events import WaitingForWorkers, WorkersReturned
from tests.resilience.kit import logged, wait_until


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
    waits = run_through_a_wait(cluster, client)
    assert [type(e) for e in waits] == [WaitingForWorkers, WorkersReturned], waits
    assert waits[1].waited > 0


def test_a_worker_that_dies_as_it_joins_does_not_end_the_wait(workerless):
    # A worker that joined and died before any step completed brought no worker back:
    # the wait goes on, with its clock, until one that stays does. (A crash-looping
    # worker that ended the wait at each arrival would restart worker_wait_timeout each
    # time, and announce workers back that never were.) The run loop's idle look can
    # still see the dying worker in the few ms before its arrival is noticed, so the
    # scenario is tried up to three times: a wait ended by arrivals fails all three.
    cluster, client = workerless

    def a_worker_dies_as_it_joins_and_none_comes() -> None:
        a_worker_dies_as_it_joins(cluster.scheduler_address, client)
        time.sleep(2.5)  # past the run loop's idle look (1 s), with no worker

    tries = []
    for _ in range(3):
        waits = run_through_a_wait(cluster, client, a_worker_dies_as_it_joins_and_none_comes)
        tries.append(waits)
        if [type(e) for e in waits] == [WaitingForWorkers, WorkersReturned]:
            assert waits[1].waited > 2.5, waits
            return
        cluster.scale(0)
        wait_until(lambda: not client.nthreads(), timeout=30, what="the workers to leave")
    raise AssertionError(f"the wait ended or restarted in every try: {tries}")


def run_through_a_wait(cluster: LocalCluster, client: Client,
                       meanwhile: Callable[[], None] = lambda: None) -> list[Any]:
    """A run of two tasks on a cluster with no worker: once it waits for workers,
    `meanwhile` runs, then a worker that stays joins. Returns the run's wait events."""
    seen: list[Any] = []
    errors: list[BaseException] = []
    rc = ResilientCluster(client, [{"task_id": i} for i in range(2)], input="x",
                          scatter=False, worker_wait_timeout=60, on_event=seen.append)

    def then_a_worker_stays() -> None:
        try:
            wait_until(lambda: any(isinstance(e, WaitingForWorkers) for e in seen),
                       timeout=30, what="the run to wait for workers")
            meanwhile()
        except BaseException as error:  # said below; the run still gets its worker
            errors.append(error)
        finally:
            cluster.scale(1)

    helper = threading.Thread(target=then_a_worker_stays, daemon=True)
    helper.start()
    try:
        summary = rc.distribute(quick)
    finally:
        helper.join(timeout=60)
    assert not errors, errors
    assert summary.delivered == 2
    return [e for e in seen if isinstance(e, (WaitingForWorkers, WorkersReturned))]


def a_worker_dies_as_it_joins(scheduler: str, client: Client) -> None:
    """A `dask worker` (no nanny to restart it), SIGKILLed as soon as it joins; returns
    once the scheduler has seen it go."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dask", "worker", scheduler, "--no-nanny", "--nthreads", "1",
         "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not client.nthreads() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.nthreads(), "the short-lived worker did not join within 30 s"
    finally:
        process.kill()
        process.wait(timeout=30)
    wait_until(lambda: not client.nthreads(), timeout=10,
               what="the scheduler to see the short-lived worker go")


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
