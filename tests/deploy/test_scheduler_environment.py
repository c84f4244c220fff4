"""A run on a scheduler that lacks this library, or has another version of it, is
refused at its start with what to install: real `dask scheduler` processes, each given a
preload that changes what it can import."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client

from resilience import ConfigError, ResilientCluster


def echo(payload, **_):
    return payload


@contextlib.contextmanager
def scheduler_with(preload: Path, folder: Path) -> Iterator[Client]:
    """A `dask scheduler` (no workers: the check comes before any task) running
    `preload` first; stopped, with its whole process group, whatever happens."""
    address_file = folder / "scheduler.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(address_file), "--preload", str(preload)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Client(scheduler_file=str(address_file), timeout="60s") as client:
            yield client
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def run_three(client: Client, **settings) -> None:
    # No worker will come: without the check, the run would wait for one (bounded).
    ResilientCluster(client, [{"task_id": i} for i in range(3)], input="x",
                     worker_wait_timeout=5, **settings).distribute(echo)


@pytest.mark.parametrize("settings", [{}, {"max_task_replicas": 2}, {"scatter": False}])
def test_a_scheduler_that_cannot_import_the_library_is_refused_with_what_to_install(
        tmp_path, settings):
    # Before the check, every task failed with Dask's "Error during deserialization of
    # the task graph", reported as the user's protocol raising.
    poison = tmp_path / "without_resilience.py"
    poison.write_text("import sys\nsys.modules['resilience'] = None  # an ImportError\n")
    with scheduler_with(poison, tmp_path) as client, pytest.raises(
            ConfigError, match=r"^the scheduler cannot import this library \(.*\)\. .* install "
                               r"resilience-testbed in the scheduler's environment"):
        run_three(client, **settings)


def test_a_scheduler_with_another_version_of_the_library_is_refused(tmp_path):
    # The scheduler's environment says it has version 9.9.9 (a distribution's metadata
    # found first on its path, as an older install would be).
    metadata = tmp_path / "site" / "resilience_testbed-9.9.9.dist-info"
    metadata.mkdir(parents=True)
    (metadata / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: resilience-testbed\nVersion: 9.9.9\n")
    other = tmp_path / "other_version.py"
    other.write_text(f"import sys\nsys.path.insert(0, {str(metadata.parent)!r})\n")
    with scheduler_with(other, tmp_path) as client, pytest.raises(
            ConfigError, match=r"the scheduler has resilience-testbed 9\.9\.9, this client "):
        run_three(client)
