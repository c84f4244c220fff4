"""One `processes` cluster per test module: a real `dask scheduler` and three
`dask worker --nanny` processes over TLS, each in its own process group, always stopped
(the fixture's finally), and checked for stray processes after."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos import ChaosCluster


@pytest.fixture(scope="module")
def processes_cluster() -> Iterator[ChaosCluster]:
    # The processes import this repository's `tests` (protocols defined in test modules).
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    cluster = ChaosCluster.open("processes", 3, env={"PYTHONPATH": path})
    groups = []
    try:
        yield cluster
    finally:
        groups = list(cluster.backend.pids().values())  # type: ignore[attr-defined]
        cluster.close()
    alive = [pid for pid in groups if _group_alive(pid)]
    assert not alive, f"process groups {alive} outlived the processes cluster"


@pytest.fixture
def deploy(processes_cluster: ChaosCluster) -> Iterator[ChaosCluster]:
    """The module's processes cluster, back to full strength after the test."""
    yield processes_cluster
    processes_cluster.settle(timeout=60)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies waiting for init do not)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False
