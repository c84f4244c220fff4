"""What a lockstep replay keeps to, read from its original's history (`ReplayOrder`).

What the client did is read as *landmarks*: submits, accepted results, errors,
deliveries and failures, each with its ordinal among equals. Each fault's place is the
number of landmarks before it fired and before the scheduler noticed it; the other
orders come from the modules that read them (`death_race`, `result_order`,
`scatter_race`, `hit_order`, `retire_moves`, `placement`, `start_order`, `queue_order`).
`chaos.harness.lockstep` keeps a replay to them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.harness.death_race import (
    DeathRaces,
    Result,
    Step,
    death_races,
    fired_at,
    results_done,
    step_of,
)
from chaos.harness.hit_order import hits_first
from chaos.harness.placement import (
    Placement,
    placed_on_victims,
    placements,
    scatters_placed,
)
from chaos.harness.queue_order import queued_behind
from chaos.harness.result_order import (
    Entry,
    behind_taken,
    close_behind,
    results_in_order,
    scatter_waits,
)
from chaos.harness.retire_moves import Role, retire_destinations
from chaos.harness.scatter_race import (
    Meeting,
    landed_first,
    met_in_scatter,
    scatters_beaten,
    shutdown_met_in_scatter,
)
from chaos.harness.start_order import Submission, rerun_priorities, start_ranks
from chaos.harness.steal_order import ThawSteal, stealing_in_replay, steals_at_thaw

# What the client did, in the order it did it: the events a target writes.
LANDMARK_TYPES = frozenset({"submit", "step-completed", "step-error", "deliver", "task-failed"})
_CLOCK_TRIGGERS = ("at-time", "poisson")  # faults that keep to the clock, not the client

Landmark = tuple[str, Any, tuple[int, ...], Any]  # (type, task_id, index, step)


def landmark_of(event: Mapping[str, Any]) -> Landmark | None:
    """The landmark an event is, or None for events no target writes."""
    if event.get("type") not in LANDMARK_TYPES:
        return None
    return (event["type"], *step_of(event))


def first_workers(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The addresses of the workers a run started with (its `run-start`), sorted."""
    start = history[0] if history else {}
    return sorted(w["address"] for w in start.get("workers", ()))


@dataclass(frozen=True)
class ReplayOrder:
    """What a replay keeps to, read from its original's history: the results in order
    (with the faults' entries), the landmarks in order, how many landmarks came before
    each fault fired and before the scheduler noticed it, the `fault-skipped` event of
    each fault the original never fired, the kill the client met in a scatter (the
    ordinal of that scatter, and whether its victim had died before it), the scatters
    that beat a kill, the results that raced their worker's death, the worker each
    fault hit, where each retirement's keys went, where each scatter went, the order its
    steps started in, and the steps queued on a worker as it finished one."""

    results: tuple[tuple[Any, ...], ...]
    landmarks: tuple[tuple[Landmark, int], ...]
    fault_turns: Mapping[str, int]
    notice_turns: Mapping[str, int]
    unfired: Mapping[str, Mapping[str, Any]]
    met_in_scatter: Mapping[str, Meeting]
    death_races: DeathRaces
    scatters_beaten: Mapping[str, tuple[Step, int]]  # fault id -> the submit to wait for
    # fault id -> the place, among the original's first workers by address, of the one
    # it hit: a replay on another cluster has other ports, in the same order
    victims: Mapping[str, int]
    close_behind: tuple[Entry, ...]  # `chaos.harness.result_order`
    behind_taken: tuple[Entry, ...]
    scatter_waits: Mapping[tuple[Step, int], Entry]
    hit_turns: Mapping[str, int]  # when a fault is due at its hit: `_shared_turns`
    hits_first: Mapping[str, tuple[str, ...]]  # `chaos.harness.hit_order`
    unnoticed: frozenset[str]  # faults the scheduler never noticed (a freeze's, say)
    # retirement's fault id -> where each role's key went, by place among the first
    # workers (`chaos.harness.retire_moves`)
    retire_moves: Mapping[str, Mapping[Role, int]]
    # each scatter's worker by place among the first workers, and by fault id the
    # scatters its original put on its victim (`chaos.harness.placement`)
    placements: Mapping[Placement, int]
    placed_on_victims: Mapping[str, tuple[Placement, ...]]
    start_ranks: Mapping[Submission, int]  # `chaos.harness.start_order`
    rerun_priorities: Mapping[str, Mapping[Submission, int]]  # by fault id
    queued_behind: tuple[tuple[Result, Submission], ...]  # `chaos.harness.queue_order`
    # a kill held for the client's scatter -> the shutdowns that landed before it there
    landed_first: Mapping[str, tuple[str, ...]]  # `chaos.harness.scatter_race`
    # whether the replay runs Dask's stealer, and the steals it asks at thaws itself
    stealing: bool  # `chaos.harness.steal_order`
    steals_at_thaw: tuple[ThawSteal, ...]
    # a graceful shutdown that fired while the client's last scatter was under way ->
    # that scatter's ordinal (`chaos.harness.scatter_race`)
    shutdown_met_in_scatter: Mapping[str, int]

    @classmethod
    def of(cls, history: Sequence[Mapping[str, Any]]) -> ReplayOrder:
        seen: Counter[Landmark] = Counter()
        landmarks: list[tuple[Landmark, int]] = []
        times: list[float] = []
        for event in history:
            mark = landmark_of(event)
            if mark is not None:
                seen[mark] += 1
                landmarks.append((mark, seen[mark]))
                times.append(float(event["time"]))

        def before(moment: float) -> int:
            return sum(t < moment for t in times)

        faults = [event for event in history if event["type"] == "fault"
                  and (event.get("trigger") or {}).get("type") not in _CLOCK_TRIGGERS]
        fired = {str(e["fault_id"]): before(fired_at(e)) for e in faults}
        noticed = {str(e["fault_id"]): before(float(e["noticed_at"]))
                   for e in faults if e.get("noticed_at")}
        unfired = {str(e["fault_id"]): e for e in history
                   if e["type"] == "fault-skipped" and str(e["fault_id"]) not in fired
                   and (e.get("trigger") or {}).get("type") not in _CLOCK_TRIGGERS}
        done = results_done(history)
        races = death_races(history, done)
        for fault_id, results in races.taken.items():  # taken here before the notice
            for task_id, index, step, nth in results:
                take = (("step-completed", task_id, index, step), nth)
                if take in landmarks and fault_id in noticed:
                    noticed[fault_id] = max(noticed[fault_id], landmarks.index(take) + 1)
        first = first_workers(history)
        victims = {str(e["fault_id"]): first.index(e["worker"]) for e in history
                   if e["type"] == "fault" and e.get("worker") in first}
        moves = {fault_id: {role: first.index(worker)
                            for role, worker in went.items() if worker in first}
                 for fault_id, went in retire_destinations(history).items()}
        results = results_in_order(history, done)
        close = close_behind(history, results, done)
        placed = scatters_placed(history)
        thaw_steals = steals_at_thaw(history, first)
        meetings = met_in_scatter(history)
        return cls(results, tuple(landmarks), fired, noticed, unfired, meetings,
                   races, scatters_beaten(history), victims,
                   close, behind_taken(history, results, close),
                   scatter_waits(history, results, done),
                   _shared_turns(faults, fired), hits_first(history),
                   frozenset(str(e["fault_id"]) for e in history
                             if e["type"] == "fault" and not e.get("noticed_at")), moves,
                   placements(placed, first), placed_on_victims(history, placed),
                   start_ranks(history), rerun_priorities(history), queued_behind(history, done),
                   landed_first(history, meetings), stealing_in_replay(history, thaw_steals),
                   thaw_steals, shutdown_met_in_scatter(history))


def _shared_turns(faults: Sequence[Mapping[str, Any]], turns: Mapping[str, int]
                  ) -> dict[str, int]:
    """When each fault is due at its hit: at its turn, the faults decided at one probe's
    hit in the original (one execution at one point) at the first one's. The harness
    enacted them there one after the other, and the landmarks the client wrote meanwhile
    (as the first landed) are no turn of the later ones: holding the hit for those held
    the first with it until the replay's patience ran out (nightly --seed 8484's `s030`,
    `s038`). The client still waits for each at its own turn: it went on in between."""
    hits: dict[tuple[Any, ...], list[str]] = {}
    for event in faults:
        trigger = event.get("trigger") or {}
        if trigger.get("execution"):
            point = (trigger["execution"], trigger.get("point"), trigger.get("fraction"))
            hits.setdefault(point, []).append(str(event["fault_id"]))
    shared = dict(turns)
    for together in hits.values():
        first = min(turns[fault_id] for fault_id in together)
        shared.update(dict.fromkeys(together, first))
    return shared
