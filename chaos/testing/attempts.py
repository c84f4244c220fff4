"""One attempt of one step, as it runs on a worker: the only code of the check that does.

The protocol, its input and the task's kwargs arrive pickled, so that a failure to
load any of them on the worker comes back as evidence instead of a Dask error. Each
call gets a fresh copy of the input (a restarted attempt gets a pristine input from
the task registry too), runs in the check's working directory (so a relative write
lands where the check watches, wherever the worker was started), and returns its
outputs pickled, the bytes the default comparison uses. `calls=2` calls the protocol
twice in a row in this process, with the same function object: state carried from
one call to the next shows there.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from typing import Any

import cloudpickle

from chaos.testing.module_state import changed, fingerprint

TRACEBACK_LINES = 12  # the end of a remote traceback kept as evidence


@dataclass(frozen=True)
class AttemptSpec:
    """What a worker needs to run one attempt."""

    attempt_id: str
    protocol: bytes  # cloudpickled protocol
    payload: bytes  # cloudpickled input
    kwargs: bytes  # cloudpickled task kwargs
    workdir: str  # the working directory the protocol runs in
    calls: int = 1
    topic: str | None = None  # report "start" and "end" here (attempts that are killed)


@dataclass(frozen=True)
class CallResult:
    outputs: tuple[bytes, ...] | None  # None when the call raised or an output did not pickle
    seconds: float
    error: str | None = None  # "ValueError: ..." and the end of the traceback
    unpicklable: str | None = None  # which output could not be pickled, and why
    state_changes: tuple[str, ...] = ()  # module globals / attributes the call changed


@dataclass(frozen=True)
class AttemptResult:
    worker: str
    pid: int
    calls: tuple[CallResult, ...]
    load_error: str | None = None  # the protocol, input or kwargs could not be loaded here


def run_attempt(spec: AttemptSpec) -> AttemptResult:
    """Run `spec` here (a Dask task); never raises for the protocol's sake."""
    from distributed import get_worker

    worker = get_worker()
    try:
        protocol = cloudpickle.loads(spec.protocol)
    except Exception as error:
        return AttemptResult(worker.address, os.getpid(), (),
                             f"the protocol could not be loaded on worker {worker.address}: "
                             f"{type(error).__name__}: {error}")
    previous = os.getcwd()
    try:
        os.chdir(spec.workdir)
    except OSError as error:
        return AttemptResult(worker.address, os.getpid(), (),
                             f"worker {worker.address} cannot enter the working directory "
                             f"{spec.workdir!r} ({error}): run the check on workers of this "
                             "machine")
    try:
        calls: list[CallResult] = []
        for _ in range(spec.calls):
            try:
                payload, kwargs = cloudpickle.loads(spec.payload), cloudpickle.loads(spec.kwargs)
            except Exception as error:
                return AttemptResult(worker.address, os.getpid(), tuple(calls),
                                     f"the input or the task's kwargs could not be loaded on "
                                     f"worker {worker.address}: {type(error).__name__}: {error}")
            calls.append(_call(protocol, payload, kwargs, spec, worker))
        return AttemptResult(worker.address, os.getpid(), tuple(calls))
    finally:
        os.chdir(previous)


def _call(protocol: Any, payload: Any, kwargs: dict[str, Any], spec: AttemptSpec,
          worker: Any) -> CallResult:
    # The library's own normalisation of a protocol's return value (one payload, a
    # list, a generator, or None), so that the check sees the outputs it would deliver.
    from resilience.worker_step import as_outputs

    before = fingerprint(protocol)
    if spec.topic:
        worker.log_event(spec.topic, {"attempt": spec.attempt_id, "event": "start",
                                      "at": time.time()})
    started = time.perf_counter()
    try:
        outputs = as_outputs(protocol(payload, **kwargs))
    except Exception as error:
        seconds = time.perf_counter() - started
        tail = "".join(traceback.format_exc().splitlines(keepends=True)[-TRACEBACK_LINES:])
        return CallResult(None, seconds, f"{type(error).__name__}: {error}\n{tail.rstrip()}",
                          state_changes=tuple(changed(before, fingerprint(protocol))))
    finally:
        if spec.topic:  # the protocol is over: a kill from now on would not land part-way
            worker.log_event(spec.topic, {"attempt": spec.attempt_id, "event": "end"})
    seconds = time.perf_counter() - started
    state_changes = tuple(changed(before, fingerprint(protocol)))
    pickled = []
    for index, output in enumerate(outputs):
        try:
            pickled.append(cloudpickle.dumps(output, protocol=5))
        except Exception as error:
            return CallResult(None, seconds, unpicklable=(
                f"output {index} ({type(output).__name__}) cannot be pickled: "
                f"{type(error).__name__}: {error}"), state_changes=state_changes)
    return CallResult(tuple(pickled), seconds, state_changes=state_changes)
