"""The scatter race, replayed: a kill that a naive loop's scatter met in the original.

A naive loop (`dask-raw`, `prc630`) scatters each next input from the client. A scatter
that reaches a worker after it was killed but before the scheduler saw it die ends the
loop with `CommClosedError`; one a few milliseconds later goes to a live worker and the
loop goes on. A segfault or `os._exit` is asked of the worker through its nanny and is
seen dead 0.1 to 0.8 s later, so the race is common, and replays left to it ran it
again: about half of them fell the other way.

So a lockstep replay holds such a kill (`ScatterRace`). The naive loops write a
`scatter` event before each scatter; that event is where the client and the kill meet.
The victim is stopped (SIGSTOP) where it had died in the original: as the fault fires
if it died before the scatter, else as the client comes to make it. The scheduler
cannot tell a stopped worker from a busy one. The client waits there for the kill, if
the kill had fired first, and the victim is killed (SIGKILL) once the scatter is on
its way to it; at once, if the original's kill came while its scatter was on its way.

The race can go the other way: a kill that fired while a scatter was on its way to its
victim, and that the scatter beat (it went through, and the client went on to submit the
step it was for). Left to itself, the replay's scatter may meet the kill instead and end
the loop (nightly --seed 777's s022: 8 outputs lost in each replay, 3 in the original).
So such a kill lands only once the client has submitted that step here too
(`scatters_beaten`, `Lockstep.before_landing`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from chaos.harness.death_race import Step, fired_at, step_of
from chaos.history import HistoryWriter
from chaos.spec import ABRUPT_KINDS, GRACEFUL_KINDS

# From the client's scatter call to its data reaching the stopped victim: the scheduler
# picks a worker and sends in a few ms; the victim waits, stopped and unnoticed.
SCATTER_IN_FLIGHT = 0.05
# From the client's scatter call to the scheduler's sending its data to a worker.
SCATTER_SENT = 0.01


class Meeting(NamedTuple):
    """Where a kill met the client's scatter in the original."""

    nth: int  # the ordinal of that scatter among the client's `scatter` events
    fired_before: bool  # the kill fired before the scatter was made (else as it went)
    died_before: bool  # ... and its victim was dead before it was made


def met_in_scatter(history: Sequence[Mapping[str, Any]]) -> dict[str, Meeting]:
    """The abrupt kill (at most one) whose worker the client's last scatter reached
    before the scheduler noticed it, ending the run with CommClosedError: the last kill
    noticed after that scatter began (fired before it, or while it was on its way), by
    its fault id."""
    failed = _failed_scatter(history)
    if failed is None:
        return {}
    made, ended, nth = failed
    racing = [event for event in history if event["type"] == "fault"
              and event.get("kind") in ABRUPT_KINDS
              and fired_at(event) <= ended
              and float(event.get("noticed_at") or "inf") > made]
    if not racing:
        return {}
    kill = racing[-1]
    fired = fired_at(kill) <= made
    died = float(kill.get("landed_at") or "inf") <= made
    return {str(kill["fault_id"]): Meeting(nth, fired, died)}


def shutdown_met_in_scatter(history: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The graceful shutdown (at most one) that fired while the client's last scatter
    was under way, ending the run with CommClosedError, where no kill did: by its fault
    id, that scatter's ordinal. A replay lands it only once the client has made that
    scatter here, and the scatter has had SCATTER_SENT to reach the scheduler
    (`Lockstep.before_landing`). Else the client, held for the shutdown at its last
    landmark before it fired there, made the scatter as it fired, and the scatter met
    the shutdown or not as the milliseconds fell (nightly --seed 2525's `s008`: in 1 of
    10 replays the retirement's victim was leaving before the scatter came, which went
    to another worker, and three outputs the original lost were delivered)."""
    failed = _failed_scatter(history)
    if failed is None or met_in_scatter(history):
        return {}
    made, ended, nth = failed
    shutdowns = [event for event in history if event["type"] == "fault"
                 and event.get("kind") in GRACEFUL_KINDS and made < fired_at(event) <= ended]
    return {str(shutdowns[-1]["fault_id"]): nth} if shutdowns else {}


def _failed_scatter(history: Sequence[Mapping[str, Any]]) -> tuple[float, float, int] | None:
    """The client's last scatter, when the run ended with CommClosedError in a scatter:
    when it was made, when the run ended, and its ordinal among the scatters."""
    scatters = [event for event in history if event["type"] == "scatter"]
    ends = [event for event in history if event["type"] == "run-end"]
    error = str(ends[-1].get("error") or "") if ends else ""
    if not scatters or not error.startswith("CommClosedError") or "scatter" not in error:
        return None
    return float(scatters[-1]["time"]), float(ends[-1]["time"]), len(scatters)


def landed_first(history: Sequence[Mapping[str, Any]], meetings: Mapping[str, Meeting]
                 ) -> dict[str, tuple[str, ...]]:
    """For each kill the client met in a scatter, the graceful shutdowns that fired before
    that scatter and landed before the kill did. A retirement moves keys to the kill's
    victim as it lands: stopped for the race first, the victim never gets them, and dies
    with fewer (nightly --seed 9753's `s004`: 3 outputs lost in most replays, 8 in the
    original). By fault id."""
    scatters = [event for event in history if event["type"] == "scatter"]
    faults = {str(event["fault_id"]): event for event in history if event["type"] == "fault"}
    first: dict[str, tuple[str, ...]] = {}
    for fault_id, meeting in meetings.items():
        made = float(scatters[meeting.nth - 1]["time"])
        died = float(faults[fault_id].get("landed_at") or "inf")
        shutdowns = tuple(sorted(
            other for other, event in faults.items()
            if event.get("kind") in GRACEFUL_KINDS and fired_at(event) <= made
            and float(event.get("landed_at") or "inf") < died))
        if shutdowns:
            first[fault_id] = shutdowns
    return first


def scatters_beaten(history: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Step, int]]:
    """The abrupt kills that fired within SCATTER_IN_FLIGHT of the client's last scatter
    before them, which went through: the client submitted the step it was for after the
    kill fired (a scatter that met the kill ended the loop: no submit followed). By
    fault id: that step, and the submit's ordinal among its submits."""
    beaten: dict[str, tuple[Step, int]] = {}
    for fault in history:
        if fault["type"] != "fault" or fault.get("kind") not in ABRUPT_KINDS:
            continue
        fired = fired_at(fault)
        scatters = [e for e in history if e["type"] == "scatter" and float(e["time"]) <= fired]
        if not scatters or fired - float(scatters[-1]["time"]) > SCATTER_IN_FLIGHT:
            continue
        scattered, made = step_of(scatters[-1]), float(scatters[-1]["time"])
        submits = [e for e in history if e["type"] == "submit" and step_of(e) == scattered]
        after = [n for n, e in enumerate(submits, 1) if float(e["time"]) > made]
        if after and float(submits[after[0] - 1]["time"]) > fired:
            beaten[str(fault["fault_id"])] = (scattered, after[0])
    return beaten


class ScatterRace:
    """One held kill of a lockstep replay. The client's thread and the kill's landing
    thread meet at the client's scatter: the client waits there (before making it)
    until the kill has fired, if it had in the original, and its victim is stopped; the
    kill waits until the client is there."""

    def __init__(self, fault_id: str, meeting: Meeting, patience: float,
                 landings: Mapping[str, threading.Event] | None = None) -> None:
        self.fault_id = fault_id
        self.meeting = meeting
        self.patience = patience
        self._landings = dict(landings or {})  # of the shutdowns in `landed_first`
        self.history: HistoryWriter | None = None
        self._passed = False  # the client made that scatter before the kill was armed
        self._armed = threading.Event()  # the kill fired, held (its victim stoppable)
        self._at_scatter = threading.Event()  # the client is about to scatter, held
        self._go = threading.Event()  # the victim is stopped: the client may scatter

    def arm(self) -> None:
        """The kill fired and is held: the client will wait for it at its scatter."""
        self._armed.set()

    def client_at(self, nth: int) -> None:
        """On the client's thread, before its `nth` scatter."""
        if nth != self.meeting.nth:
            return
        if self.meeting.fired_before:  # as in the original, the kill fires first
            self._armed.wait(self.patience)
        if not self._armed.is_set():  # the kill comes as the scatter is on its way
            self._passed = True
            return
        self._at_scatter.set()
        self._go.wait(self.patience)

    def wait_for_client(self) -> bool:
        """On the kill's thread: until the client is at its scatter (at most `patience`;
        a replay that left its original says so, and is killed anyway). True if the
        client had made it already: the kill is due at once."""
        if self._passed:
            self._say("killed as it fired, the scatter under way")
            return True
        if not self._at_scatter.wait(self.patience) and self.history is not None:
            self.history.emit("lockstep-diverged", waiting=f"fault {self.fault_id}",
                              missing=[["scatter", self.meeting.nth]], patience=self.patience)
        return False

    def wait_for_landings(self) -> None:
        """On the kill's thread, before its victim is stopped as the client comes to its
        scatter: until the shutdowns in `landed_first` have landed, for up to half the
        patience (the client waits at its scatter meanwhile, for up to the whole)."""
        deadline = time.monotonic() + self.patience / 2
        missing = [fault_id for fault_id, landed in self._landings.items()
                   if not landed.wait(max(0.0, deadline - time.monotonic()))]
        if missing and self.history is not None:
            self.history.emit("lockstep-diverged", waiting=f"fault {self.fault_id}'s victim",
                              missing=[["landed", fault_id] for fault_id in missing],
                              patience=self.patience / 2)

    def release(self) -> None:
        """The victim is stopped: the client may make its scatter."""
        self._go.set()
        if self._at_scatter.is_set():
            self._say("stopped as it fired" if self.meeting.died_before else
                      "stopped as the client came to its scatter")

    def _say(self, how: str) -> None:
        if self.history is not None:
            self.history.emit("kill-held", fault_id=self.fault_id, scatter=self.meeting.nth,
                              how=how)

    def end(self) -> None:
        """The replay ended, or the kill cannot be held here: nobody waits any more."""
        for event in (self._armed, self._at_scatter, self._go):
            event.set()
