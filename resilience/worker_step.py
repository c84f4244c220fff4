"""What runs on a worker: one protocol on one input, its outputs normalised to a list."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from distributed.protocol.serialize import serialize

from resilience.errors import ProtocolError
from resilience.watch import report_start


def protocol_name(protocol: Callable[..., Any]) -> str:
    """A readable name: the function's, seen through functools.partial and callables."""
    while isinstance(protocol, functools.partial):
        protocol = protocol.func
    name = getattr(protocol, "__qualname__", None) or type(protocol).__qualname__
    return str(name)


class StepCall:
    """The callable Dask runs for step `step`: `protocol(payload, **kwargs)` as a list.

    A protocol returns one payload, a list or tuple of them, an iterator (e.g. a
    generator) of them, or None for nothing. Exceptions come back wrapped in
    `ProtocolError`, so that a protocol's own failure is never mistaken for a lost
    worker or a lost input.
    """

    def __init__(self, protocol: Callable[..., Any], step: int,
                 start_topic: str | None = None) -> None:
        self.protocol = protocol
        self.step = step
        self.start_topic = start_topic  # where to report the start, for step_timeout

    def __call__(self, payload: Any, kwargs: Mapping[str, Any]) -> list[Any]:
        if self.start_topic is not None:
            report_start(self.start_topic)
        try:
            outputs = as_outputs(self.protocol(payload, **kwargs))
            check_serializable(outputs)
            return outputs
        except Exception as error:
            raise ProtocolError(
                protocol_name(self.protocol),
                self.step,
                f"{type(error).__name__}: {error}",
                traceback.format_exc(),
            ) from None


def as_outputs(result: Any) -> list[Any]:
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return list(result)
    if isinstance(result, Iterator):
        return list(result)
    return [result]


def check_serializable(outputs: list[Any]) -> None:
    """Raise TypeError, with its cause, when Dask could not send these outputs on. Such
    a result never leaves its worker: it was fetched again and again, and the run hung.
    Dask's own serialization, with out-of-band buffers: no copy of large arrays."""
    try:
        serialize(outputs, on_error="raise")
    except TypeError as error:
        cause: BaseException = error
        while (inner := cause.__cause__ or cause.__context__) is not None:
            cause = inner
        raise TypeError(f"an output of the protocol cannot be serialized ({cause})") from None
