"""The campaign's tests: Hypothesis profiles, one shared LocalCluster, kept failures.

Profiles `ci` (default), `dev` and `nightly` are registered here (see profiles.py) and
chosen with `--hypothesis-profile NAME` or the `HYPOTHESIS_PROFILE` environment variable:

    pytest tests/campaign                                  # ci: ~2 minutes on 2 cores
    pytest tests/campaign --hypothesis-profile dev
    HYPOTHESIS_PROFILE=nightly pytest tests/campaign

The shared cluster (`cluster`, `chaos_cluster`) comes from tests/conftest.py.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.campaign.profiles import DEFAULT_PROFILE, PROFILES


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
