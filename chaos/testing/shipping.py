"""How protocols, inputs and task kwargs are pickled for the workers.

cloudpickle pickles an importable function by reference (module and name): the
worker imports the module and finds it. A protocol defined in a test file or a
script lives in a module the workers may not be able to import, or may import from
another file of the same name (a worker started in another test's folder); asking every
worker first tells which, and those modules are pickled by value, as the project's own
test suite does with `cloudpickle.register_pickle_by_value`. Nothing changes for
protocols the workers can import, so their module globals are the workers' own.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import cloudpickle


def importable(module_names: list[str]) -> dict[str, str | None]:
    """On a worker: where each of `module_names` would be imported from (None: nowhere)."""
    found: dict[str, str | None] = {}
    for name in module_names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        found[name] = None if spec is None else str(spec.origin)
    return found


def same_module_everywhere(name: str, origins: Iterable[str | None]) -> bool:
    """Whether every worker imports `name` from the very file the client has: a worker
    started in another test's folder may find a different module of the same name."""
    module = sys.modules.get(name)
    here = getattr(module, "__file__", None)
    return here is not None and all(
        origin is not None and os.path.realpath(origin) == os.path.realpath(here)
        for origin in origins)


def modules_of(protocols: Iterable[Callable[..., Any]]) -> list[str]:
    """The modules that define `protocols`, except __main__ (always pickled by value)."""
    names = []
    for protocol in protocols:
        name = getattr(protocol, "__module__", None) or getattr(type(protocol), "__module__", "")
        if name and name != "__main__" and name in sys.modules and name not in names:
            names.append(name)
    return names


def dumps(value: Any, by_value: Iterable[str] = ()) -> bytes:
    """`value` pickled for a worker, the modules named in `by_value` pickled by value (so a
    protocol, or an input of a class, defined in a test file reaches the workers)."""
    already = cloudpickle.list_registry_pickle_by_value()  # registered by a conftest, say
    added = [sys.modules[name] for name in by_value
             if name not in already and name in sys.modules]
    for module in added:
        cloudpickle.register_pickle_by_value(module)
    try:
        return bytes(cloudpickle.dumps(value, protocol=5))
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)
