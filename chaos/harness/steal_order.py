"""Dask's work stealing in the original, kept to in a lockstep replay.

Dask's stealer moves a queued step from a busy worker to an idle one. It asks the
busy worker first, and a frozen worker answers only once thawed: whether the step is
still queued then (and moves) or already started (and stays) is a race at the thaw.
Left to it, replays ran it again and fell the other way (nightly --seed 8642's `s025`:
t6's step 0 ran on the frozen worker after the thaw and died with it at a later
SIGKILL; in its replay the stealer had moved it off, and t6 was delivered).

So the scheduler's membership plugin says what the stealer moved (`step-stolen`), and
a lockstep replay of an original whose stealer moved nothing runs without it.

Most steals are off a frozen worker (12 of the 16 runs with a steal, of one nightly's
178 kept): the stealer asked during the freeze and the worker gave the step up at its
thaw. Whether the stealer asked at all is its timing too (it balances once a second):
nightly --seed 9753's `s016` stole t3's step 0 off a frozen worker, which a nanny's
close then took down; in 2 of 10 replays nothing was stolen, t3 ran there, and lost an
output more. So a replay whose original stole only so runs without the stealer, and
asks each such steal itself, of the same worker, just before its thaw
(`Places.steals_before_thaw`). A replay of one that stole otherwise keeps the stealer on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from distributed import Client

from chaos.harness import scheduler_calls
from chaos.harness.death_race import numbered
from chaos.harness.start_order import Submission
from chaos.history import HistoryWriter

# A steal confirmed this long after its victim's thaw was asked during the freeze.
THAW_WINDOW = 0.1


class ThawSteal(NamedTuple):
    """A step the original's stealer moved off a frozen worker at its thaw."""

    fault_id: str  # the freeze
    submission: Submission  # the step, with its submit's ordinal among that step's
    thief: int  # the worker it went to, by place among the first workers by address


def steals_at_thaw(history: Sequence[Mapping[str, Any]], first: Sequence[str]
                   ) -> tuple[ThawSteal, ...]:
    """The original's steals off a worker a freeze held (confirmed during the freeze or
    within THAW_WINDOW of its end), whose thief was among the first workers."""
    submits = {str(event.get("key")): (step, nth)
               for event, step, nth in numbered(history, "submit")}
    ended = {str(event["fault_id"]): float(event["time"]) for event in history
             if event["type"] == "fault-ended"}
    freezes = [event for event in history if event["type"] == "fault"
               and event.get("kind") == "freeze" and event.get("landed_at")]
    steals = []
    for steal in (event for event in history if event["type"] == "step-stolen"):
        at = float(steal["time"])
        frozen = [str(freeze["fault_id"]) for freeze in freezes
                  if freeze.get("worker") == steal.get("victim")
                  and float(freeze["landed_at"]) <= at
                  <= ended.get(str(freeze["fault_id"]), float("inf")) + THAW_WINDOW]
        submission = submits.get(str(steal.get("key")))
        if frozen and submission is not None and steal.get("thief") in first:
            steals.append(ThawSteal(frozen[-1], submission, list(first).index(steal["thief"])))
    return tuple(steals)


def stealing_in_replay(history: Sequence[Mapping[str, Any]],
                       thaw_steals: Sequence[ThawSteal]) -> bool:
    """Whether a lockstep replay of `history` lets Dask's stealer run: unless its original
    ran it (`run-start.stealing`; older histories do not say, and keep it) and it moved
    nothing but `thaw_steals` (the replay asks those itself)."""
    start = history[0] if history else {}
    if not start.get("stealing"):
        return True
    stolen = sum(event["type"] == "step-stolen" for event in history)
    return bool(stolen > len(thaw_steals))


def submitted_key(history: Sequence[Mapping[str, Any]], submission: Submission) -> str | None:
    """The key of `submission` in a run's `history` (its `submit` event), if made yet."""
    for event, step, nth in numbered(history, "submit"):
        if (step, nth) == submission:
            return str(event.get("key"))
    return None


def ask_steals(client: Client, history: HistoryWriter, victim: str,
               steals: Sequence[tuple[str, str]]) -> None:
    """Ask `victim` to give each of `steals` (key, thief) up, on the scheduler; a steal
    that could not be asked says why (`lockstep-diverged`)."""
    for key, thief in steals:
        try:
            why = client.run_on_scheduler(scheduler_calls.request_steal, key, victim, thief,
                                          callback_timeout=scheduler_calls.CALL_TIMEOUT)
        except Exception as error:  # the scheduler gone, say: the thaw goes on
            why = f"{type(error).__name__}: {error}"
        if why is not None:
            history.emit("lockstep-diverged", waiting="a steal at a thaw",
                         missing=[["steal", key, thief, why]])
