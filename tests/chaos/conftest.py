"""The harness's tests: a small workload, and long campaigns left to `pytest -m slow`.

The shared cluster (`cluster`, `chaos_cluster`) comes from tests/conftest.py.
"""

from __future__ import annotations

import os

import pytest

from chaos import Workload


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Long campaigns run only when asked for: `pytest -m slow`.
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="a long campaign: run it with `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords and "tests/chaos" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def small_workload() -> Workload:
    """Small and quick: 4 tasks x 2 steps of 50 ms, 10 KB payloads."""
    return Workload(n_tasks=4, n_steps=2, payload_bytes=10_000, step_seconds=0.05, seed=3)


@pytest.fixture
def workload() -> Workload:
    return small_workload()

