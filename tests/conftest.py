"""Suite-wide setup.

Protocols defined in test modules must reach real worker processes. Test modules
are not importable there (pytest imports them by path), so cloudpickle is told to
ship them by value.

The harness's tests (tests/chaos) and the campaign's (tests/campaign) share one
ChaosCluster of 3 nanny workers, built once per session and always closed: a second
cluster would only compete for the same 2 cores. After each test that used it, no
worker process may be left SIGSTOPped: the runner must have undone every freeze, and
the `harness` fixture fails the test that left one (after resuming it, so the next
test starts clean).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator

import cloudpickle
import pytest

# Registered before Hypothesis reads --hypothesis-profile, whichever folder is run.
import tests.campaign.profiles  # noqa: F401
from chaos import ChaosCluster
from chaos.harness import process_state


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    modules = {item.module for item in items if getattr(item, "module", None) is not None}
    for module in modules:
        cloudpickle.register_pickle_by_value(module)


CHAOS_WORKERS = 3


@pytest.fixture(scope="session")
def chaos_cluster() -> Iterator[ChaosCluster]:
    cluster = ChaosCluster.local(CHAOS_WORKERS, silence_logs=logging.CRITICAL)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def harness(chaos_cluster: ChaosCluster) -> Iterator[ChaosCluster]:
    """The shared harness cluster, checked for stopped worker processes after the test.
    (tests/resilience has `local_cluster`: a plain LocalCluster.)"""
    yield chaos_cluster
    pids = [victim.pid for victim in chaos_cluster.refresh().workers.values() if victim.pid]
    stopped = [pid for pid in pids if process_state(pid) in ("T", "t")]
    for pid in stopped:
        os.kill(pid, signal.SIGCONT)
    assert not stopped, f"worker processes {stopped} were left SIGSTOPped after the test"
