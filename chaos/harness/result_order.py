"""The order a lockstep replay's results keep, and where the client's steps fall in it.

Which worker runs a step next is decided by the scheduler as results and submits reach
it: a step submitted before its input's worker finished its running one runs there
next; submitted a millisecond after, it waits behind the next queued task that worker
is given (nightly --seed 8484: 5 of its 17 inexact replays, a step on another worker
from the first placement on). So, as well as the results' own order (`results_in_order`),
a replay keeps two of the original's orderings between results and the client:

- a quick scatter, and the submit that follows it, waits for the results the original
  had done before that submit (`scatter_waits`);
- a result done before the client took the one before it waits for that one only to be
  on its way, not taken (`close_behind`): waiting for the client there would hold the
  result until after the client's next scatter, the other way round from its original.
  On its way means held by the scheduler, if the client took it (`behind_taken`).

A result the client never took, whose worker a later kill took down, comes after the
results of other workers the client took before that kill (`_lost_behind_taken`), and
waits until the client took them: its original's client took those while it was done,
so it had not reached the client. Done first in a replay, the client took it first,
scattered its next input and went on from there (nightly --seed 4242's `s031`: t2 done
4 ms before t7 and never taken, t7 taken; its replays took t2 first, 0 of 3 exact).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from chaos.harness.death_race import (
    LOSES_RESULTS,
    Done,
    Step,
    fired_at,
    results_taken,
    step_of,
)
from chaos.probes.turns import fault_entry

Entry = tuple[Any, ...]  # a result (task_id, index, step, nth), or a fault's entry
# A scatter and its submit a few ms apart (a naive loop's, on this host: 2 to 5 ms).
QUICK_SCATTER = 0.02


def results_in_order(history: Sequence[Mapping[str, Any]], done: Sequence[Done]
                     ) -> tuple[Entry, ...]:
    """The results in the order the workers finished them, with each fault's entry
    where the scheduler noticed it (a result that came after a worker's death was
    noticed waits for it), except that the results the client took keep the order it
    took them in (two results a fraction of a millisecond apart may reach it either way
    round, and that order decides where the next inputs go). `done`: `results_done`."""
    timed = [(d.at, d.position, d.result) for d in done]
    for position, event in enumerate(history):
        if event["type"] == "fault":
            settled = event.get("noticed_at") or event.get("fired_at") or event["time"]
            timed.append((float(settled), position, fault_entry(str(event["fault_id"]))))
    # In time, and in the history's order where times are equal.
    finished = [entry for _, _, entry in sorted(timed, key=lambda item: item[:2])]
    taken_at = results_taken(history)
    chosen = set(finished) & set(taken_at)
    slots = iter(result for result in taken_at if result in chosen)
    ordered = [next(slots) if entry in chosen else entry for entry in finished]
    return _lost_behind_taken(history, ordered, done, taken_at)


def _lost_behind_taken(history: Sequence[Mapping[str, Any]], order: list[Entry],
                       done: Sequence[Done], taken: Mapping[Entry, float]
                       ) -> tuple[Entry, ...]:
    """`order` with each result lost to a kill (`_lost_to_kills`) moved past the results
    right after it that the client took before that kill fired, as far as the first that
    is not (or a result of its own worker, which ran after it there, or a fault's entry)."""
    by_result = {d.result: d for d in done}
    for lost, death in _lost_to_kills(history, done, taken).items():
        place = order.index(lost)
        while place + 1 < len(order):
            after = order[place + 1]
            if (after not in by_result or by_result[after].worker == by_result[lost].worker
                    or taken.get(after, death) >= death):
                break
            order[place], order[place + 1] = after, lost
            place += 1
    return tuple(order)


def _lost_to_kills(history: Sequence[Mapping[str, Any]], done: Sequence[Done],
                   taken: Mapping[Entry, float]) -> dict[Entry, float]:
    """Each result the client never `taken` whose worker a kill took down after it was
    done, with when that kill fired."""
    kills: dict[str, list[float]] = {}
    for event in history:
        if event["type"] == "fault" and event.get("kind") in LOSES_RESULTS:
            kills.setdefault(str(event.get("worker")), []).append(fired_at(event))
    lost = {}
    for d in done:
        death = min((t for t in kills.get(d.worker, ()) if t > d.at), default=None)
        if death is not None and d.result not in taken:
            lost[d.result] = death
    return lost


def close_behind(history: Sequence[Mapping[str, Any]], results: Sequence[Entry],
                 done: Sequence[Done]) -> tuple[Entry, ...]:
    """The results done before the client took the result before them in `results`, or
    after one it never took; but not a result lost to a kill, done before the one before
    it, which the client took ahead of it (`_lost_behind_taken` put it there: it waits
    for the client)."""
    done_at = {d.result: d.at for d in done}
    taken_at = results_taken(history)
    lost = _lost_to_kills(history, done, taken_at)
    close = []
    for before, entry in itertools.pairwise(results):
        if entry not in done_at or before not in done_at:
            continue
        if (entry in lost and done_at[entry] < done_at[before]
                and taken_at.get(before, lost[entry]) < lost[entry]):
            continue
        if before not in taken_at or done_at[entry] < taken_at[before]:
            close.append(entry)
    return tuple(close)


def behind_taken(history: Sequence[Mapping[str, Any]], results: Sequence[Entry],
                 close: Sequence[Entry]) -> tuple[Entry, ...]:
    """Of the results `close` behind the one before them in `results`, those whose one
    before the client took: the scheduler held that one first there, and a replay's waits
    until it does here (`chaos.probes.turns`). Not one behind a result never taken (lost
    with its worker, say): the scheduler may never hold that one, and the original's did
    not wait for it."""
    before = dict(zip(results[1:], results, strict=False))
    taken_at = results_taken(history)
    return tuple(entry for entry in close if before.get(entry) in taken_at)


def scatter_waits(history: Sequence[Mapping[str, Any]], results: Sequence[Entry],
                  done: Sequence[Done]) -> dict[tuple[Step, int], Entry]:
    """For each quick scatter (its step, and its ordinal among that step's scatters):
    the last result in `results` done before the submit that followed it. A scatter
    that took longer than QUICK_SCATTER, or that a fault fired during, was held up by a
    dying worker, not raced by results: steps started and finished meanwhile, and
    waiting for them moved the scatter past that fault (nightly --seed 777's `s011`,
    `s018`); the kill's own race with it is `chaos.harness.scatter_race`'s."""
    done_at = {d.result: d.at for d in done}
    place = {entry: n for n, entry in enumerate(results) if entry in done_at}
    fired = [fired_at(event) for event in history if event["type"] == "fault"]
    scatters: Counter[Step] = Counter()
    waits: dict[tuple[Step, int], Entry] = {}
    for position, event in enumerate(history):
        if event["type"] != "scatter":
            continue
        step = step_of(event)
        scatters[step] += 1
        submit = next((e for e in history[position:]
                       if e["type"] == "submit" and step_of(e) == step), None)
        if submit is None:  # the scatter ended the loop
            continue
        made, submitted = float(event["time"]), float(submit["time"])
        if submitted - made > QUICK_SCATTER or any(made <= at <= submitted for at in fired):
            continue
        before = [entry for entry in place if done_at[entry] < submitted]
        if before:
            waits[(step, scatters[step])] = max(before, key=place.__getitem__)
    return waits
