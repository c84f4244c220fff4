"""From attempts to findings: pure functions of what the workers returned and the snapshots.

The driver (`chaos.testing.check`) decides what to run; this module alone decides what
it means. Per step of a task, three calls from one input: two in a row on one worker
(A1, A2) and one on another worker (B). Then:

- any call raised: `error` (the chain stops there for that task);
- an output could not be pickled: `not-picklable`;
- a call changed a module global or an attribute of the protocol: `hidden-state`, named;
- A1 and B differ: `nondeterministic`;
- A1 and B agree but A2 differs: `hidden-state` (the first call left something behind
  in the worker process that changed the second);
- the files under the watched paths changed: `side-effect`.

After a kill part-way through the step: files the killed attempt left that an
uninterrupted run does not leave, or a rerun that raises or differs from the
uninterrupted run, are `partial-state`; a rerun the check could not make is an `error`.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from chaos.testing.attempts import AttemptResult, CallResult
from chaos.testing.findings import Finding, FindingKind
from chaos.testing.snapshots import FileChange, describe_changes

Compare = Callable[[Any, Any], bool]

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


@dataclass(frozen=True)
class StepOf:
    """Where: one step of one task, on one of its inputs (several after a fan-out)."""

    protocol: str
    task_id: Any
    step: int
    index: tuple[int, ...] = ()  # which output of the previous steps is the input
    fanned_out: bool = False

    def finding(self, kind: FindingKind, detail: str, fix: str = "") -> Finding:
        if self.fanned_out:
            detail = f"(input {self.index}) {detail}"
        return Finding(kind, self.task_id, self.step, detail, self.protocol, fix)


def judge_runs(where: StepOf, first: AttemptResult | str, other: AttemptResult | str,
               compare: Compare | None) -> list[Finding]:
    """Findings from A (two calls in a row on one worker) and B (one call on another)."""
    for result in (first, other):
        if isinstance(result, str):
            return [where.finding("error", result)]
        if result.load_error:
            return [where.finding("error", result.load_error)]
    assert isinstance(first, AttemptResult) and isinstance(other, AttemptResult)
    calls = [*first.calls, *other.calls]
    failed = [call for call in calls if call.error]
    if failed:
        share = "" if len(failed) == len(calls) else (
            f" (in {len(failed)} of {len(calls)} runs from the same input: it fails only "
            "sometimes)")
        return [where.finding("error", f"it raised{share}: {failed[0].error}")]
    unpicklable = [call.unpicklable for call in calls if call.unpicklable]
    if unpicklable:
        return [where.finding("not-picklable", unpicklable[0])]
    (a1, a2), b = first.calls, other.calls[0]
    cross = differ(a1, b, compare)
    repeat = differ(a1, a2, compare)
    state = _first_per_name(change for call in calls for change in call.state_changes)
    if state:
        detail = "a call changed " + "; ".join(state)
        if repeat:
            detail += f"; and a second call on the same worker gave another result: {repeat}"
        return [where.finding("hidden-state", detail)]
    if cross:
        also = "; two calls in a row on one worker differ too" if repeat else ""
        return [where.finding(
            "nondeterministic",
            f"runs from the same input on {first.worker} and {other.worker} differ: {cross}{also}",
        )]
    if repeat:
        return [where.finding(
            "hidden-state",
            f"of two calls in a row on {first.worker}, the second differs from the first "
            f"(which a run on another worker agrees with): {repeat}. Something the first call "
            "left in the worker process (a global, a cache, a class attribute) changed it",
        )]
    return []


def judge_side_effects(where: StepOf, found: Sequence[FileChange], cwd: Path) -> list[Finding]:
    if not found:
        return []
    return [where.finding("side-effect", f"it {describe_changes(list(found), cwd)}")]


def judge_kill(where: StepOf, leftovers: Sequence[FileChange], killed_at: str,
               rerun: AttemptResult | str | None, reference: CallResult,
               compare: Compare | None, cwd: Path) -> list[Finding]:
    """Findings of one kill: what the killed attempt left, and whether the rerun agrees."""
    found = []
    if leftovers:
        found.append(where.finding(
            "partial-state",
            f"the attempt killed {killed_at} left behind: {describe_changes(list(leftovers), cwd)}"
            "; an uninterrupted run leaves none of this",
        ))
    if rerun is None:
        return found
    if isinstance(rerun, str) or rerun.load_error:
        # The check could not rerun the step (the cluster, or loading it on a worker):
        # nothing is known about the protocol's restart, so it is not blamed for it.
        cause = rerun if isinstance(rerun, str) else rerun.load_error
        return [*found, where.finding(
            "error", f"the check could not rerun the step after the attempt killed "
                     f"{killed_at}: {cause}")]
    problem: str | None
    if rerun.calls[0].error:
        problem = f"it raised: {rerun.calls[0].error}"
    elif rerun.calls[0].unpicklable:
        problem = rerun.calls[0].unpicklable
    else:
        difference = differ(reference, rerun.calls[0], compare)
        problem = difference and f"its outputs differ from the uninterrupted run's: {difference}"
    if problem:
        found.append(where.finding(
            "partial-state",
            f"the rerun after the attempt killed {killed_at} went wrong: {problem}",
        ))
    return found


def differ(a: CallResult, b: CallResult, compare: Compare | None) -> str | None:
    """How the outputs of two calls differ, or None when they are the same."""
    left, right = a.outputs or (), b.outputs or ()
    if len(left) != len(right):
        return f"{len(left)} output(s) against {len(right)}"
    for index, (x, y) in enumerate(zip(left, right, strict=True)):
        if x == y:
            continue
        if compare is not None:
            try:
                if compare(cloudpickle.loads(x), cloudpickle.loads(y)):
                    continue
            except Exception as error:
                return f"compare() raised on output {index}: {type(error).__name__}: {error}"
        shown_x, shown_y = _shown(x), _shown(y)
        if shown_x == shown_y:
            return f"output {index}: {shown_x}, pickled to other bytes ({len(x):,} and {len(y):,})"
        return f"output {index}: {shown_x} against {shown_y}"
    return None


def _first_per_name(changes: Iterable[str]) -> list[str]:
    """One change per global or attribute: '`x` of m (0 -> 1)' twice is said once."""
    kept: dict[str, str] = {}
    for change in changes:
        kept.setdefault(change.rsplit(" (", 1)[0], change)
    return list(kept.values())


def _shown(pickled: bytes) -> str:
    try:
        return _short.repr(cloudpickle.loads(pickled))
    except Exception:
        return f"<{len(pickled):,} pickled bytes>"
