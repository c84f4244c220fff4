"""The state a protocol can carry from one call to the next, and whether a call changed it.

Runs on the worker. Comparing outputs of two calls catches hidden state only when it
happens to change a result; this names it. Before and after each call, it fingerprints
(hash of the pickled value) every module global the protocol's code can reach (its
own names and those of same-module functions it calls) and, for a callable object,
its attributes. A fingerprint that changed during a call is state carried between
calls. Modules, classes and functions are not fingerprinted (they are code, not state),
nor are values that cannot be pickled.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import reprlib
import types
from collections.abc import Callable, Iterator
from typing import Any

Fingerprints = dict[str, tuple[str, str]]  # label -> (hash of the pickled value, short repr)

_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40


def fingerprint(protocol: Callable[..., Any]) -> Fingerprints:
    """Fingerprints of the state `protocol` can reach, labelled for a person."""
    found: Fingerprints = {}
    for label, value in _reachable_state(protocol):
        digest = _digest(value)
        if digest is not None:
            found[label] = (digest, _short.repr(value))
    return found


def changed(before: Fingerprints, after: Fingerprints) -> list[str]:
    """'module global `_calls` of m (0 -> 1)' for each fingerprint that changed."""
    return [
        f"{label} ({before[label][1]} -> {after[label][1]})"
        for label in before
        if label in after and before[label][0] != after[label][0]
    ]


def _reachable_state(protocol: Callable[..., Any]) -> Iterator[tuple[str, Any]]:
    while isinstance(protocol, functools.partial):
        protocol = protocol.func
    if not isinstance(protocol, (types.FunctionType, types.MethodType)):
        for name, value in vars(protocol).items() if hasattr(protocol, "__dict__") else ():
            if _is_state(name, value):
                yield f"attribute `{name}` of the protocol object", value
        protocol = type(protocol).__call__  # a callable object: its class's method
    function = getattr(protocol, "__func__", protocol)  # a bound method's function
    namespace = getattr(function, "__globals__", None)
    if namespace is None:
        return
    module = namespace.get("__name__", "?")
    for name in sorted(_global_names(function, namespace)):
        value = namespace[name]
        if _is_state(name, value):
            yield f"module global `{name}` of {module}", value


def _global_names(function: Any, namespace: dict[str, Any]) -> set[str]:
    """Names of `namespace` that `function`'s code, or same-module functions it names, use."""
    names: set[str] = set()
    pending = [function.__code__]
    seen: set[int] = set()
    while pending:
        code = pending.pop()
        if id(code) in seen:
            continue
        seen.add(id(code))
        for name in code.co_names:
            if name in namespace:
                names.add(name)
                helper = namespace[name]
                if (isinstance(helper, types.FunctionType)
                        and helper.__globals__ is namespace):
                    pending.append(helper.__code__)
        pending.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
    return names


def _is_state(name: str, value: Any) -> bool:
    if name.startswith("__") or isinstance(value, types.ModuleType):
        return False
    return not callable(value)  # classes, functions, lru_caches: code, not state


def _digest(value: Any) -> str | None:
    try:
        data = pickle.dumps(value, protocol=5)
    except Exception:
        try:
            import cloudpickle

            data = cloudpickle.dumps(value, protocol=5)
        except Exception:
            return None  # a lock, an open file: cannot tell, so say nothing
    return hashlib.blake2b(data, digest_size=16).hexdigest()
