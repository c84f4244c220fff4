"""Suite-wide setup.

Protocols defined in test modules must reach real worker processes. Test modules
are not importable there (pytest imports them by path), so cloudpickle is told to
ship them by value.
"""

from __future__ import annotations

import cloudpickle
import pytest

# Registered before Hypothesis reads --hypothesis-profile, whichever folder is run.
import tests.campaign.profiles  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    modules = {item.module for item in items if getattr(item, "module", None) is not None}
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
