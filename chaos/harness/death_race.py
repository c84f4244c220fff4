"""Results that raced their worker's death in the original, and which way each race went.

A result done on a worker a few milliseconds before a fault killed it either reached
the client first or died with the worker: its way out (worker, scheduler, client, on
streams batched every 2 ms) races the kill's landing (3 ms for a SIGKILL, 50 ms for a
nanny's close). Nothing else in a lockstep replay decides that race, and a replay that
went the other way loses one output more, or one fewer (nightly --seed 6262: 8 of its
14 inexact replays, with no other departure from their originals). So a replay keeps
each race's outcome:

- a result the client took after the fault fired (about as it was noticed): the fault
  lands only once the client has taken it here too (`Lockstep.before_landing`);
- a result the client never took: the client's fetch of it (a naive loop's `fetch`
  event) waits for the fault's notice, and fails as it did. (Holding the result on the
  worker instead would hold its only thread, which the fault's trigger may need.) So
  does a result done earlier whose fetch was on its way as the fault fired: a fetch
  can take 10 to 25 ms on a loaded host, and one that came back first in a replay took
  an output the original lost (nightly --seed 5757's `s006`, 2 of 3 replays);
- a step an abrupt kill cut short (started on its victim, never done): it waits at its
  result point for the fault to settle (`chaos.probes.turns`). A replay whose worker
  got there first (its steps a little ahead, its fault held for its turn) finished the
  step the original lost (seen in nightly --seed 8484's `s007`, t3 delivered in 3 of 3
  replays; there the kill was a nanny's close, which this rule left out: `_cut_short`);
- a step a nanny's close cut short waits at its result point until the close reaches
  its worker (`closed_short`): the close waits for running steps, so waiting for it to
  settle held it up to its bound (5 s, nightly --seed 777's `s031`); let go as the
  worker closes its stream to the scheduler, the step ends and its result is lost, as
  there (nightly --seed 9753's `s005`: t0 delivered in 2 of 10 replays);
- a result done on a graceful shutdown's victim after the shutdown fired, before it was
  noticed, waits at its result point until its worker stops running (`after_shutdown`):
  a worker still running starts its next queued step as the result is done, which one
  shutting down does not (nightly --seed 2020's `s037`: a retirement fired 7 ms before
  the victim's step ended there, and 3 ms after in every replay, whose victim then
  started t3's step 0, 0 of 3 exact); and one done there just before it fired
  (RACE_WINDOW) is done before it fires (`before_shutdown`, `Lockstep.before_landing`):
  the retirement then finds the result, not the step's input, on its victim (nightly
  --seed 3131's `s039`: t6's step-1 result done 14 ms before the retirement fired
  there, not yet in every replay, which lost one output fewer). One done there as it
  shut down that never reached the scheduler (it ran again) waits, as one a nanny's
  close cut short, until its worker closes its stream (`_never_reached`). And one done
  on a retirement's victim as it retired, that reached the scheduler, holds the
  retirement open until it is done here (`moved_late`, `lost_late`;
  `chaos.harness.replay_landing`): Dask ends a retirement once every key its victim
  holds has another copy, and a replay whose moves were made ahead of it
  (`chaos.harness.retire_moves`) ended it before the step was done, which then ran
  again elsewhere (nightly --seed 2525's `s008`: t2's step 0, done 8 ms after the
  retirement fired in the original, cut short in every replay). Where the victim's
  removal lost it (done after Dask's last look at the victim: nightly --seed 8642's
  `s011`), the held retirement ends by removing its victim, which loses it again.

A result of a step with several attempts is matched by its ordinal among that step's
results: the n-th done, taken (or not) as the n-th.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from chaos.spec import ABRUPT_KINDS, GRACEFUL_KINDS

# A result done this long before the fault fired (or after, before its notice) raced it.
RACE_WINDOW = 0.05
# Kinds whose victim's results die with it: all but a retirement (it moves them first)
# and a freeze (the worker lives on).
LOSES_RESULTS = ABRUPT_KINDS | {"nanny-close", "preempt"}

Step = tuple[Any, tuple[int, ...], Any]  # (task_id, index, step)
Result = tuple[Any, tuple[int, ...], Any, int]  # (task_id, index, step, nth)


class Done(NamedTuple):
    """A result a worker finished (the `ok` of an invoked execution)."""

    at: float  # when it was done
    position: int  # the `ok`'s place in the history
    result: Result  # with its ordinal among its step's results
    worker: str


@dataclass(frozen=True)
class DeathRaces:
    """Of the results done on a killed worker around its kill: those the client took
    after the fault fired, by fault id, and those it never took, with their fault; and
    the results the steps an abrupt kill cut short would have had, with their fault, and
    those of the steps a nanny's close cut short (and of those a graceful shutdown's
    victim finished as it shut down, never reaching the scheduler); and the results done
    on a graceful shutdown's victim just before it fired, by fault id, and the others
    done there as it shut down, with their fault; and of those, by fault id, the ones
    a retirement moved, and the ones its victim's removal lost."""

    taken: Mapping[str, tuple[Result, ...]]
    lost: Mapping[Result, str]
    cut_short: Mapping[Result, str]
    closed_short: Mapping[Result, str]
    before_shutdown: Mapping[str, tuple[Result, ...]]
    after_shutdown: Mapping[Result, str]
    moved_late: Mapping[str, tuple[Result, ...]]
    lost_late: Mapping[str, tuple[Result, ...]]


def results_done(history: Sequence[Mapping[str, Any]]) -> list[Done]:
    """Each result a worker finished, in the history's order."""
    invoked: dict[str, Mapping[str, Any]] = {}  # execution -> its `invoke`
    oks: Counter[Step] = Counter()
    done: list[Done] = []
    for position, event in enumerate(history):
        if event["type"] == "invoke":
            invoked[event["execution"]] = event
        elif event["type"] == "ok" and event.get("execution") in invoked:
            invoke = invoked[event["execution"]]
            step = step_of(invoke)
            oks[step] += 1
            done.append(Done(float(event["time"]), position, (*step, oks[step]),
                             str(invoke.get("worker"))))
    return done


def results_taken(history: Sequence[Mapping[str, Any]]) -> dict[Result, float]:
    """When the client took each result, in the order it did (a result's ordinal: among
    the results of its step the client took)."""
    return {(*step, nth): float(event["time"])
            for event, step, nth in numbered(history, "step-completed")}


def _fetches(history: Sequence[Mapping[str, Any]]) -> dict[Result, float]:
    """When the client began to take each result (its `fetch`; ordinal as in
    `results_taken`)."""
    return {(*step, nth): float(event["time"]) for event, step, nth in numbered(history, "fetch")}


def numbered(history: Sequence[Mapping[str, Any]], event_type: str
             ) -> Iterator[tuple[Mapping[str, Any], Step, int]]:
    """The events of `event_type`, each with its step and its ordinal (from 1) among
    that step's events of the type."""
    seen: Counter[Step] = Counter()
    for event in history:
        if event["type"] == event_type:
            step = step_of(event)
            seen[step] += 1
            yield event, step, seen[step]


def death_races(history: Sequence[Mapping[str, Any]],
                done: Sequence[Done]) -> DeathRaces:
    """Read, from an original's history and its `results_done`, which way each of its
    death races went."""
    taken_at = results_taken(history)
    fetched = _fetches(history)
    kills = [event for event in history if event["type"] == "fault"
             and event.get("kind") in LOSES_RESULTS and event.get("worker")]
    won: dict[str, tuple[Result, ...]] = {}
    lost: dict[Result, str] = {}
    for kill in kills:
        fault_id = str(kill["fault_id"])
        fired = fired_at(kill)
        noticed = float(kill.get("noticed_at") or fired + RACE_WINDOW)
        racing = [d.result for d in done
                  if d.worker == str(kill["worker"]) and fired - RACE_WINDOW <= d.at <= noticed]
        won[fault_id] = tuple(r for r in racing
                              if fired < taken_at.get(r, fired) <= noticed + RACE_WINDOW)
        lost.update((r, fault_id) for r in racing if r not in taken_at)
        lost.update((d.result, fault_id) for d in done
                    if d.worker == str(kill["worker"]) and d.at < fired
                    and d.result not in taken_at and fetched.get(d.result, noticed) < noticed)
    abrupt = [kill for kill in kills if kill.get("kind") in ABRUPT_KINDS]
    closes = [kill for kill in kills if kill.get("kind") == "nanny-close"]
    before, after = _around_shutdowns(history, done)
    lost_in_removal = _lost_in_removal(history, done)
    unreached = _never_reached(history, done, after, lost_in_removal)
    reached = {result: f for result, f in after.items() if result not in unreached}
    return DeathRaces({f: results for f, results in won.items() if results}, lost,
                      _cut_short(history, done, abrupt),
                      {**_cut_short(history, done, closes), **unreached}, before, reached,
                      *_retired_late(history, reached, lost_in_removal))


def _around_shutdowns(history: Sequence[Mapping[str, Any]], done: Sequence[Done]
                      ) -> tuple[dict[str, tuple[Result, ...]], dict[Result, str]]:
    """The results done on each graceful shutdown's victim within RACE_WINDOW before it
    fired, by fault id; and those done there after it fired and before the scheduler
    noticed it, with that shutdown."""
    before: dict[str, tuple[Result, ...]] = {}
    after: dict[Result, str] = {}
    for fault in history:
        if (fault["type"] != "fault" or fault.get("kind") not in GRACEFUL_KINDS
                or not fault.get("noticed_at")):
            continue
        fault_id, fired = str(fault["fault_id"]), fired_at(fault)
        noticed = float(fault["noticed_at"])
        on_victim = [d for d in done if d.worker == str(fault.get("worker"))]
        just_before = [d.result for d in on_victim if fired - RACE_WINDOW <= d.at <= fired]
        if just_before:
            before[fault_id] = tuple(just_before)
        for d in on_victim:
            if fired < d.at <= noticed:
                after.setdefault(d.result, fault_id)
    return before, after


def _lost_in_removal(history: Sequence[Mapping[str, Any]], done: Sequence[Done]
                     ) -> set[Result]:
    """The results whose key their worker's next removal lost (`lost_computed_keys`):
    they had reached the scheduler, and no copy left with their worker."""
    invoked = {event.get("execution"): event for event in history if event["type"] == "invoke"}
    removals = [event for event in history if event["type"] == "worker-removed"]
    lost = set()
    for d in done:
        key = invoked.get(history[d.position].get("execution"), {}).get("key")
        removal = next((event for event in removals if event.get("worker") == d.worker
                        and float(event["time"]) >= d.at), {})
        if str(key) in (removal.get("lost_computed_keys") or ()):
            lost.add(d.result)
    return lost


def _never_reached(history: Sequence[Mapping[str, Any]], done: Sequence[Done],
                   after: Mapping[Result, str], lost_in_removal: set[Result]
                   ) -> dict[Result, str]:
    """Of the results done on a graceful shutdown's victim as it shut down (`after`),
    those that never reached the scheduler: their step started again later, and the
    victim's removal did not lose their key. Such a result waits, as one a nanny's
    close cut short, for its worker to close its stream (nightly --seed 3131's `s033`:
    t6's step-0 result done on a retirement's victim 1 ms before the scheduler removed
    it, and run again; in 1 of 10 replays it came 10 ms before, the scheduler took it
    and lost it with the worker, and the client, told it was done, waited for it ahead
    of three others)."""
    starts = [(step_of(event), float(event["time"])) for event in history
              if event["type"] == "invoke"]
    return {d.result: after[d.result] for d in done
            if d.result in after and d.result not in lost_in_removal
            and any(step == d.result[:3] and at > d.at for step, at in starts)}


def _retired_late(history: Sequence[Mapping[str, Any]], reached: Mapping[Result, str],
                  lost_in_removal: set[Result]
                  ) -> tuple[dict[str, tuple[Result, ...]], dict[str, tuple[Result, ...]]]:
    """Of the results done on a graceful shutdown's victim as it shut down that reached
    the scheduler (`reached`), those of a retirement: the ones it moved, and the ones
    its victim's removal lost (done after Dask's last look at the victim), each by
    fault id."""
    retirements = {str(event["fault_id"]) for event in history
                   if event["type"] == "fault" and event.get("kind") == "retire"}
    moved: dict[str, tuple[Result, ...]] = {}
    lost: dict[str, tuple[Result, ...]] = {}
    for result, fault_id in reached.items():
        if fault_id in retirements:
            late = lost if result in lost_in_removal else moved
            late[fault_id] = (*late.get(fault_id, ()), result)
    return moved, lost


def _cut_short(history: Sequence[Mapping[str, Any]], done: Sequence[Done],
               kills: Sequence[Mapping[str, Any]]) -> dict[Result, str]:
    """The steps started on a kill's victim before it fired that never ended: the
    result each would have had (its ordinal: one more than its step's results done by
    then), with the first such kill."""
    ended = {event.get("execution") for event in history if event["type"] in ("ok", "fail")}
    cut: dict[Result, str] = {}
    for event in history:
        if event["type"] != "invoke" or event.get("execution") in ended:
            continue
        started, step = float(event["time"]), step_of(event)
        hit = [kill for kill in kills
               if kill["worker"] == event.get("worker") and fired_at(kill) >= started]
        if hit:
            kill = min(hit, key=fired_at)
            fired = fired_at(kill)
            nth = 1 + sum(d.result[:3] == step and d.at < fired for d in done)
            cut.setdefault((*step, nth), str(kill["fault_id"]))
    return cut


def fired_at(fault: Mapping[str, Any]) -> float:
    """When a fault event's fault fired (its event's time, for one that never said)."""
    return float(fault.get("fired_at") or fault["time"])


def step_of(event: Mapping[str, Any]) -> Step:
    """The step an event is about: (task_id, index, step)."""
    return (event.get("task_id"), tuple(event.get("index") or ()), event.get("step"))
