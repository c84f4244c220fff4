"""The order in which the original's steps started, kept in a lockstep replay by priority.

A worker with one thread runs its ready step of best priority next. The steps a naive
loop submits have equal priorities (Dask ranks them by generation, one per 100 ms of
submissions), and among equals the order is the one in which Dask's batched messages
happened to bring them: on one worker, five steps submitted together with their inputs
there ran last first (E, D, C, B, A), and two runs of one schedule started one worker's
steps in different orders. The board (`chaos.probes.turns`) then held the step that
started first at its result, waiting for the original's earlier one, queued behind it on
the same thread: the replay waited out its patience and went its own way (nightly
--seed 5757's `s005` and `s017`: one output more lost in 7 of their 8 replays).

So a lockstep replay submits each step of a naive loop with a Dask priority that ranks
it where its first execution started in the original (`start_ranks`); one that never
started there comes after them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaos.harness.death_race import Step, numbered
from chaos.history import same_process

Submission = tuple[Step, int]  # a step, with its ordinal among that step's submits


def _starts(history: Sequence[Mapping[str, Any]]
            ) -> list[tuple[Mapping[str, Any], Submission]]:
    """Each execution of a submitted step, in the order they started: its `invoke`, and
    the submission it ran."""
    submitted: dict[str, Submission] = {str(event["key"]): (step, nth)
                                        for event, step, nth in numbered(history, "submit")
                                        if event.get("key")}
    return [(event, submitted[str(event.get("key"))]) for event in history
            if event["type"] == "invoke" and str(event.get("key")) in submitted]


def start_ranks(history: Sequence[Mapping[str, Any]]) -> dict[Submission, int]:
    """Each submission's place (from 1) among the first executions of all of them, in the
    order they started; a submission that never started is left out."""
    ranks: dict[Submission, int] = {}
    for _, submission in _starts(history):
        if submission not in ranks:
            ranks[submission] = len(ranks) + 1
    return ranks


def priority(ranks: Mapping[Submission, int], submission: Submission) -> int:
    """The Dask priority (higher runs first) that keeps `submission` at its rank; 0, below
    every ranked one, for a submission that never started in the original. Even, so that
    a rerun fits between two ranks (`rerun_priorities`)."""
    rank = ranks.get(submission)
    return 0 if rank is None else 2 * (len(ranks) + 1 - rank)


def rerun_priorities(history: Sequence[Mapping[str, Any]]
                     ) -> dict[str, dict[Submission, int]]:
    """For each fault but a freeze, the priority each submission it cut short on its
    victim should get as it lands: the one between the first starts before and after
    where it started next in the original, or 0 if it never did. Dask runs it again
    elsewhere with its key's priority, and that of its first start put it before steps
    its original's rerun came after (nightly --seed 3131's `s014`: t2's step 0). A step
    queued on the victim, not running, keeps its first start's rank: it starts for the
    first time after the fault (`s014` again: t2's step 1, given 0 as it was cut short
    later elsewhere, tied with the step the retirement had cut short)."""
    starts = _starts(history)
    ranked = len({submission for _, submission in starts})  # as many as `start_ranks`
    ended = {event.get("execution") for event in history if event["type"] in ("ok", "fail")}
    first: set[Submission] = set()
    between: list[int] = []  # at each start, the priority between the first starts around it
    for _, submission in starts:
        first.add(submission)
        between.append(2 * (ranked - len(first)) + 1)
    cut: set[Any] = set()  # executions a fault already cut short
    priorities: dict[str, dict[Submission, int]] = {}
    faults = sorted((e for e in history if e["type"] == "fault" and e.get("kind") != "freeze"
                     and e.get("worker") and e.get("fired_at") is not None),
                    key=lambda e: e["fired_at"])
    for fault in faults:  # (a step its victim started as it left is cut short too)
        for n, (event, submission) in enumerate(starts):
            execution = event.get("execution")
            if execution in ended or execution in cut or not same_process(
                    (event["worker"], event.get("pid")), (fault["worker"], fault.get("pid"))):
                continue
            cut.add(execution)
            rerun = next((between[m] for m in range(n + 1, len(starts))
                          if starts[m][1] == submission), 0)
            priorities.setdefault(str(fault["fault_id"]), {})[submission] = rerun
    return priorities
