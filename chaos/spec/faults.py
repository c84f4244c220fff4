"""The kinds of worker (and scheduler) loss the harness can inflict, as data.

How each kind is enacted lives in one place, `chaos.harness.inflict`; this module only names
the kinds and the properties that policies (schedules, strategies, the coordinator)
need to reason about them.

Schedule version 1 called `nanny-close` "sigterm", although no signal was sent (the
harness asked the nanny to close, which is what `dask worker` does on SIGTERM). A
version-1 schedule or history still reads: `LEGACY_KINDS` maps the old name.
"""

from __future__ import annotations

from typing import Any, Literal, cast, get_args

FaultKind = Literal["sigkill", "exit", "segfault", "nanny-close", "freeze", "retire",
                    "preempt", "scheduler-kill"]

# Ordered from the simplest to the most involved: Hypothesis shrinks `sampled_from`
# toward the first element, so a shrunk schedule uses the plainest kind that still fails.
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

# What a campaign draws from unless told otherwise: the kinds every backend can enact,
# in the order (and so with the draws) of schedule version 1.
DEFAULT_KINDS: tuple[FaultKind, ...] = ("sigkill", "exit", "segfault", "nanny-close", "freeze",
                                        "retire")

# The worker process dies on the spot; the nanny notices and starts a fresh one.
ABRUPT_KINDS: frozenset[FaultKind] = frozenset({"sigkill", "exit", "segfault"})

# A shutdown with notice. Dask waits for running tasks while it shuts a worker down
# this way, so a task held at a probe is released as soon as the shutdown starts.
# A preemption is one too: its notice lets the running task go on until the SIGKILL.
GRACEFUL_KINDS: frozenset[FaultKind] = frozenset({"nanny-close", "retire", "preempt"})

# Kinds that hit the scheduler, not one worker: no role resolves them.
SCHEDULER_KINDS: frozenset[FaultKind] = frozenset({"scheduler-kill"})

# Names of earlier schedule versions, by version: old name -> current name.
LEGACY_KINDS: dict[int, dict[str, FaultKind]] = {1: {"sigterm": "nanny-close"}}

# A preemption's notice when a schedule gives none: seconds from SIGTERM to SIGKILL.
# Clouds give 30 s (GCP, Azure) to 120 s (AWS); SLURM's KillWait defaults to 30 s.
# Campaigns compress time, as a study's preemption model says.
DEFAULT_NOTICE = 2.0

DESCRIPTIONS: dict[FaultKind, str] = {
    "sigkill": "SIGKILL the worker process (abrupt preemption; the nanny restarts it)",
    "exit": "os._exit inside the worker process",
    "segfault": "dereference NULL inside the worker process",
    "nanny-close": "Nanny.close through the nanny, as `dask worker` does on SIGTERM "
                   "(no replacement; called `sigterm` in schedule version 1)",
    "freeze": "SIGSTOP the worker process, SIGCONT after `freeze_for` seconds or never",
    "retire": "Client.retire_workers: preemption with notice, data moved off first",
    "preempt": "SIGTERM to the worker's whole process tree (nanny and worker), SIGKILL "
               "after `notice` seconds to whatever is still alive",
    "scheduler-kill": "SIGKILL the scheduler process (the `processes` backend only)",
}


def check_kind(kind: Any) -> FaultKind:
    """`kind` as a FaultKind, or ValueError naming the allowed kinds."""
    if kind not in FAULT_KINDS:
        raise ValueError(
            f"fault kind {kind!r} is not one of {', '.join(FAULT_KINDS)}; "
            "pick one of those (see chaos.spec.faults.DESCRIPTIONS)."
        )
    return cast(FaultKind, kind)


def current_kind(kind: Any, version: int) -> Any:
    """The current name of a kind as a schedule or history of `version` wrote it."""
    return LEGACY_KINDS.get(version, {}).get(kind, kind) if isinstance(kind, str) else kind
