"""A shared real cluster for the library's tests, and the fixtures around it."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster

from tests.resilience.kit import Assassin, library_keys, two_workers

LEFTOVER_WAIT = 2.0  # seconds a closed client's keys get to be forgotten


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as local:
        yield local


def leftover_keys(local_cluster: LocalCluster) -> set[str]:
    """The library's keys the shared scheduler (in this process) still knows."""
    for _ in range(5):
        try:  # read from this thread while the scheduler's loop runs: it may change size
            return set(library_keys(local_cluster.scheduler))
        except RuntimeError:
            time.sleep(0.01)
    return set()


@pytest.fixture
def client(local_cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[Client]:
    before = leftover_keys(local_cluster)
    yield from _connected(local_cluster)
    # A test's keys outliving its client would fail a later test that counts the keys of
    # its own run (CI, once): say which test left them, where everyone will see it.
    deadline = time.monotonic() + LEFTOVER_WAIT
    while (left := leftover_keys(local_cluster) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        warnings.warn(f"{request.node.nodeid} left {len(left)} keys on the shared "
                      f"scheduler after its client closed: {sorted(left)[:5]}", stacklevel=1)


def _connected(local_cluster: LocalCluster) -> Iterator[Client]:
    with Client(local_cluster) as connected:
        connected.wait_for_workers(2, timeout=30)
        yield connected
        # Leave the cluster as found: two live workers, nothing held.
        two_workers(local_cluster, connected)


@pytest.fixture
def assassin(client: Client, tmp_path: Path) -> Iterator[Assassin]:
    killer = Assassin(client, tmp_path)
    yield killer
    killer.stop()
    assert not killer.errors, f"the killer thread failed: {killer.errors}"


@pytest.fixture
def allowed_failures(client: Client) -> Iterator[Any]:
    """Set the live scheduler's allowed-failures for one test, then restore it."""

    def get(dask_scheduler: Any) -> int:
        return int(dask_scheduler.allowed_failures)

    def put(value: int, dask_scheduler: Any) -> None:
        dask_scheduler.allowed_failures = value

    original = client.run_on_scheduler(get)
    yield lambda value: client.run_on_scheduler(put, value)
    client.run_on_scheduler(put, original)
