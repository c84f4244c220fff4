"""The kinds of worker loss the harness can inflict, as data.

How each kind is enacted lives in one place, `chaos.inflict`; this module only names
the kinds and the properties that policies (schedules, strategies, the coordinator)
need to reason about them.
"""

from __future__ import annotations

from typing import Any, Literal, cast, get_args

FaultKind = Literal["sigkill", "exit", "segfault", "sigterm", "freeze", "retire"]

# Ordered from the simplest to the most involved: Hypothesis shrinks `sampled_from`
# toward the first element, so a shrunk schedule uses the plainest kind that still fails.
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

# The worker process dies on the spot; the nanny notices and starts a fresh one.
ABRUPT_KINDS: frozenset[FaultKind] = frozenset({"sigkill", "exit", "segfault"})

# A shutdown with notice. Dask waits for running tasks while it shuts a worker down
# this way, so a task held at a probe is released as soon as the shutdown starts.
GRACEFUL_KINDS: frozenset[FaultKind] = frozenset({"sigterm", "retire"})

DESCRIPTIONS: dict[FaultKind, str] = {
    "sigkill": "SIGKILL the worker process (abrupt preemption; the nanny restarts it)",
    "exit": "os._exit inside the worker process",
    "segfault": "dereference NULL inside the worker process",
    "sigterm": "nanny-managed shutdown, as `dask worker` does on SIGTERM (no replacement)",
    "freeze": "SIGSTOP the worker process, SIGCONT after `freeze_for` seconds or never",
    "retire": "Client.retire_workers: preemption with notice, data moved off first",
}


def check_kind(kind: Any) -> FaultKind:
    """`kind` as a FaultKind, or ValueError naming the allowed kinds."""
    if kind not in FAULT_KINDS:
        raise ValueError(
            f"fault kind {kind!r} is not one of {', '.join(FAULT_KINDS)}; "
            "pick one of those (see chaos.faults.DESCRIPTIONS)."
        )
    return cast(FaultKind, kind)
