"""One real LocalCluster (3 nanny workers, 1 thread each) shared by the harness's tests.

It is built once per session and always closed, even when a test fails. After each
test that used it, no worker process may be left SIGSTOPped: the runner must have
undone every freeze, and this fixture fails the test that left one (after resuming it,
so the next test starts clean).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator

import pytest

from chaos import ChaosCluster, Workload
from chaos.inflict import process_state

N_WORKERS = 3


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Long campaigns run only when asked for: `pytest -m slow`.
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="a long campaign: run it with `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords and "tests/chaos" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chaos_cluster() -> Iterator[ChaosCluster]:
    cluster = ChaosCluster.local(N_WORKERS, silence_logs=logging.CRITICAL)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(chaos_cluster: ChaosCluster) -> Iterator[ChaosCluster]:
    """The shared cluster, checked for stopped worker processes after the test."""
    yield chaos_cluster
    stopped = [pid for pid in _worker_pids(chaos_cluster) if process_state(pid) in ("T", "t")]
    for pid in stopped:
        os.kill(pid, signal.SIGCONT)
    assert not stopped, f"worker processes {stopped} were left SIGSTOPped after the test"


def small_workload() -> Workload:
    """Small and quick: 4 tasks x 2 steps of 50 ms, 10 KB payloads."""
    return Workload(n_tasks=4, n_steps=2, payload_bytes=10_000, step_seconds=0.05, seed=3)


@pytest.fixture
def workload() -> Workload:
    return small_workload()


def _worker_pids(cluster: ChaosCluster) -> list[int]:
    return [victim.pid for victim in cluster.refresh().workers.values() if victim.pid]
