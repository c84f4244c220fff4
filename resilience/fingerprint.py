"""Fingerprints that tell whether a resumed run is the same run: its protocols, and its
task ids in order.

The task-id digest is a sum of per-task hashes, so it can be extended batch by batch
as a generator of tasks is consumed, and recomputed on resume without materialising
the tasks.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
from collections.abc import Callable, Sequence
from typing import Any

from resilience.outputs import TaskId

_MODULUS = 1 << 128


def protocols_fingerprint(protocols: Sequence[Callable[..., Any]]) -> str:
    """A hash of each protocol's name and code (bytecode, constants, names it uses)."""
    digest = hashlib.sha256()
    for protocol in protocols:
        digest.update(_describe(protocol).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def protocol_names(protocols: Sequence[Callable[..., Any]]) -> list[str]:
    return [_name(protocol) for protocol in protocols]


class TaskIdDigest:
    """An order-sensitive digest of (position, task_id) pairs, extendable in any batching."""

    def __init__(self, value: str = "0") -> None:
        self._sum = int(value, 16)

    def add(self, position: int, task_id: TaskId) -> None:
        item = f"{position}:{json.dumps(task_id)}".encode()
        self._sum = (self._sum + int.from_bytes(
            hashlib.blake2b(item, digest_size=16).digest(), "little")) % _MODULUS

    @property
    def value(self) -> str:
        return format(self._sum, "x")


def _name(protocol: Callable[..., Any]) -> str:
    target = protocol.func if isinstance(protocol, functools.partial) else protocol
    module = getattr(target, "__module__", None) or type(target).__module__
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{name}"


def _describe(protocol: Callable[..., Any]) -> str:
    if isinstance(protocol, functools.partial):
        return (f"partial({_describe(protocol.func)}, {protocol.args!r}, "
                f"{sorted(protocol.keywords.items())!r})")
    code = getattr(protocol, "__code__", None)
    if code is None:  # a callable object: its class's __call__
        call = next((vars(k)["__call__"] for k in type(protocol).__mro__
                     if "__call__" in vars(k)), None)
        code = getattr(call, "__code__", None)
    return f"{_name(protocol)}:{_code_hash(code) if code is not None else ''}"


def _code_hash(code: types.CodeType) -> str:
    digest = hashlib.sha256(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            text = _code_hash(const)
        elif isinstance(const, frozenset):  # its repr's order varies with PYTHONHASHSEED
            text = repr(sorted(map(repr, const)))
        else:
            text = repr(const)
        digest.update(text.encode())
    return digest.hexdigest()[:16]
