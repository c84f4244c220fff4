"""The campaign's tests: Hypothesis profiles, one shared LocalCluster, kept failures.

Profiles `ci` (default), `dev` and `nightly` are registered here (see profiles.py) and
chosen with `--hypothesis-profile NAME` or the `HYPOTHESIS_PROFILE` environment variable:

    pytest tests/campaign                                  # ci: ~2 minutes on 2 cores
    pytest tests/campaign --hypothesis-profile dev
    HYPOTHESIS_PROFILE=nightly pytest tests/campaign

The cluster (3 nanny workers, 1 thread each) lives for this folder only and is always
closed. After each test no worker process may be left SIGSTOPped.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator

import pytest
from hypothesis import settings

from chaos import ChaosCluster
from chaos.inflict import process_state
from tests.campaign.profiles import DEFAULT_PROFILE, PROFILES

N_WORKERS = 3


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_profile", None):
        return  # Hypothesis's plugin already loaded the one asked for on the command line
    name = os.environ.get("HYPOTHESIS_PROFILE", DEFAULT_PROFILE)
    if name not in PROFILES:
        raise pytest.UsageError(
            f"HYPOTHESIS_PROFILE={name!r}: the campaign's profiles are {', '.join(PROFILES)}."
        )
    settings.load_profile(name)


def pytest_report_header(config: pytest.Config) -> str:
    return f"campaign hypothesis profile: {settings.get_current_profile_name()}"


@pytest.fixture(scope="package")
def campaign_cluster() -> Iterator[ChaosCluster]:
    cluster = ChaosCluster.local(N_WORKERS, silence_logs=logging.CRITICAL)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(campaign_cluster: ChaosCluster) -> Iterator[ChaosCluster]:
    """The shared cluster, checked for stopped worker processes after the test."""
    yield campaign_cluster
    pids = [v.pid for v in campaign_cluster.refresh().workers.values() if v.pid]
    stopped = [pid for pid in pids if process_state(pid) in ("T", "t")]
    for pid in stopped:
        os.kill(pid, signal.SIGCONT)
    assert not stopped, f"worker processes {stopped} were left SIGSTOPped after the test"
