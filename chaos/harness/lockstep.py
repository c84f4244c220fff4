"""Lockstep replay: a replay that keeps to the order of events of the run it replays.

Pinning a schedule fixes *where* its faults strike, not *when* the rest of the run gets
there. Which tasks a killed worker costs depends on the order in which results came
(a naive loop scatters each next input round robin as its result arrives), and on
what the client was doing as the worker died (a scatter under way ends a naive loop).
Both are timing, and two runs of one schedule differ in them by milliseconds.

So a lockstep replay keeps to its original eleven ways:

- its steps finish in the original's order, each fault's notice in its place among
  them: the workers keep to `ReplayOrder.results` on a board on this host's disk
  (`chaos.probes.turns`), with no round trip;
- the client's scatters and submits fall among those results where the original's did,
  so the scheduler places each next step as it did (`chaos.harness.result_order`);
- each fault fires only once the client has done what it had done in the original when
  that fault fired (`ReplayOrder.fault_turns`; faults the original enacted at one
  probe's hit, one after the other, are due together, at the first one's turn:
  `ReplayOrder.hit_turns`), and after the trigger hits of later faults that had come
  in before it fired (`chaos.harness.hit_order`);
- the client goes no further than it had got when the fault fired until it has fired
  here too, and writes no landmark the original wrote after the scheduler noticed it
  (`ReplayOrder.notice_turns`) until it has been noticed here too;
- a kill that the original's client met in a scatter (its loop ended there: the scatter
  reached the worker before the scheduler noticed it was gone) is held until the client
  makes that scatter here too, and meets it again (`chaos.harness.scatter_race`), and
  its victim is stopped for that only once the graceful shutdowns that landed before
  the kill there have landed here (`landed_first`: a retirement's keys reach it); a
  graceful shutdown such a scatter met lands once the client has made it
  (`shutdown_met_in_scatter`);
- a probe held for a graceful shutdown not due yet is let go at once, as the original
  let it go as soon as it decided the shutdown (`Coordinator._let_go_before_turn`);
- a result that raced its worker's death reaches the client, or dies, as it did in the
  original, and a step an abrupt kill cut short there is still running when it lands
  (`chaos.harness.death_race`), and a retirement is held open for the steps its
  original's victim finished as it retired (`chaos.harness.replay_landing`);
- each scattered input goes to the worker its original's went to, and a kill lands
  only once the inputs its original put on the victim are there
  (`chaos.harness.placement`);
- a worker starts its steps in the original's order: a naive loop's steps are submitted
  with priorities that rank them so, and a step a fault cut short is ranked again, as
  the fault lands, where its rerun started (`chaos.harness.start_order`);
- Dask's work stealing runs only if it moved a step in the original (the runner settles
  the cluster so: `chaos.harness.steal_order`);
- a result waits, on its worker, until the step that worker started next in the
  original has reached it, where the client had submitted that step before the result
  was done (`chaos.harness.queue_order`).

A fault the original never fired (its trigger point never reached, or its role without
a worker there) is left unarmed and skipped as the original skipped it
(`ReplayOrder.unfired`): a replay whose client outlived a race the original's lost
(a naive loop ended by a scatter to a dying worker, say) would otherwise fire it later.

What the client did is its history, read as *landmarks*: `chaos.harness.replay_order`
reads all of the above into a `ReplayOrder`. Every wait is bounded by `patience`: a
replay that departs from its original (a result or a landmark that never comes) goes
on, and says where in a `lockstep-diverged` event.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chaos.harness.death_race import Step, step_of
from chaos.harness.replay_order import (
    LANDMARK_TYPES,
    Landmark,
    ReplayOrder,
    landmark_of,
)
from chaos.harness.replay_places import Places
from chaos.harness.scatter_race import SCATTER_SENT, ScatterRace
from chaos.harness.start_order import priority as start_priority
from chaos.history import HistoryWriter
from chaos.probes.turns import (
    FAULT_PATIENCE,
    fault_entry,
    mark_arrived,
    mark_done,
    mark_submitted,
    marked_done,
    wait_done,
)

# Long enough for a result to come and the client's next landmarks to follow (tens of
# ms); short enough that a replay that left its original still ends near its time.
DEFAULT_PATIENCE = 0.5


class Lockstep:
    """One lockstep replay: its board of results, its faults held until their turn, and
    its client held at each fault's last landmark until the fault has fired, and before
    its next landmark after the notice until the fault has been noticed."""

    def __init__(self, order: ReplayOrder, *, patience: float = DEFAULT_PATIENCE,
                 shared_board: bool = True) -> None:
        self.order = order
        self.patience = patience
        # Without a folder all workers share, results come in whatever order they come.
        self.board = tempfile.mkdtemp(prefix="chaos-turns-") if shared_board else None
        self._history: HistoryWriter | None = None
        self.places = Places(order)  # this replay's workers and keys, from start()
        self._lock = threading.Lock()
        self._seen: Counter[Landmark] = Counter()
        self._taken: Counter[tuple[Any, tuple[int, ...], Any]] = Counter()  # results, by step
        self._reached = 0  # landmarks[:reached] all happened in this replay
        self._moved_at = time.monotonic()  # when `_reached` last moved on
        self._stopped = False
        self._fired = {fault_id: threading.Event() for fault_id in order.fault_turns}
        self._noticed = {fault_id: threading.Event()
                         for fault_id in (*order.fault_turns, *order.death_races.lost.values())}
        self._fetches: Counter[tuple[Any, tuple[int, ...], Any]] = Counter()  # by step
        self._scatters = 0  # `scatter` events so far
        self._scattered_at = 0.0  # when the last was written (monotonic)
        self._scattered: Counter[Step] = Counter()  # scatters about to be made, by step
        self._placed: Counter[Step] = Counter()  # scatters made, by step
        self._submitting: Counter[Step] = Counter()  # submits about to be made, by step
        self._landed = {shutdown: threading.Event()
                        for shutdowns in order.landed_first.values() for shutdown in shutdowns}
        self._races = {fault_id: ScatterRace(fault_id, meeting, patience, {
                           shutdown: self._landed[shutdown]
                           for shutdown in order.landed_first.get(fault_id, ())})
                       for fault_id, meeting in order.met_in_scatter.items()}
        self._hit: set[str] = set()  # faults whose trigger has been hit

    def start(self, history: HistoryWriter) -> None:
        self._history = history
        self.places.start(history)
        for race in self._races.values():
            race.history = history
        history.gate(self.hold)
        history.listen(self.observe)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self.places.stop()
        for event in (*self._fired.values(), *self._noticed.values(), *self._landed.values()):
            event.set()
        for race in self._races.values():
            race.end()
        if self.board is not None:
            # Renamed first, atomically: a worker's result still coming finds no board
            # at once. An rmtree alone races it (the result's claim lands in the emptied
            # folder, which then stays), and a result that found the folder waited out
            # a fault's patience there, its worker 10 s late into the next run
            # (nightly --seed 9753's `s037`, 3 of 10 replays).
            gone = f"{self.board}.gone"
            try:
                os.rename(self.board, gone)
            except OSError:
                gone = self.board
            shutil.rmtree(gone, ignore_errors=True)

    # ------------------------------------------------------------------ the client

    def observe(self, event: Mapping[str, Any]) -> None:
        """An event of this replay's history (called by the writer, on its thread).

        At a fault's last landmark before it fired in the original, the client (the
        thread that wrote it) waits here until it has fired here too. Not on an event
        loop's thread, which the fault's own trigger may need.
        """
        if event["type"] == "scatter":
            with self._lock:
                self._scatters += 1
                self._scattered_at = time.monotonic()
                nth = self._scatters
            for race in self._races.values() if not _on_event_loop() else ():
                race.client_at(nth)  # a held kill's victim is stopped before it goes on
        mark = landmark_of(event)
        if mark is None:
            return
        if event["type"] == "step-completed":
            key = step_of(event)
            with self._lock:
                self._taken[key] += 1
                nth = self._taken[key]
            if self.board is not None:
                mark_arrived(self.board, (*key, nth))  # the next result may go now
        with self._lock:
            self._seen[mark] += 1
            nth = self._seen[mark]
            landmarks = self.order.landmarks
            while (self._reached < len(landmarks)
                   and self._seen[landmarks[self._reached][0]] >= landmarks[self._reached][1]):
                self._reached += 1
                self._moved_at = time.monotonic()
            due = [(f"fault {fault_id} to fire", self._fired[fault_id], self.patience)
                   for fault_id, turn in self.order.fault_turns.items()
                   if turn == self._reached]
        if event["type"] == "submit" and self.board is not None:  # before the client waits
            mark_submitted(self.board, (step_of(event), nth), str(event.get("key")))
        self._wait(due)

    def hold(self, type: str, fields: Mapping[str, Any]) -> None:
        """Before an event of this replay's history is written (called by the writer).

        A landmark the original wrote only after a fault's notice waits here until the
        fault has been noticed here too. Not earlier: what the client did after its last
        landmark before the notice (a scatter that met the dying worker) raced the notice
        in the original, and must race it again. A fetch of a result that died with its
        worker in the original waits for that kill's notice.
        """
        if type == "fetch":
            self._wait(self._died_with_its_worker(fields))
        if type == "scatter":
            self._results_before_submit(fields)
        if type not in LANDMARK_TYPES:
            return
        with self._lock:
            due = [(f"fault {fault_id} to be noticed", self._noticed[fault_id], FAULT_PATIENCE)
                   for fault_id, turn in self.order.notice_turns.items()
                   if turn == self._reached]
        self._wait(due)

    def _results_before_submit(self, fields: Mapping[str, Any]) -> None:
        """Before a scatter, and the submit after it: the results done before that submit
        in the original, done here too (`chaos.harness.result_order`)."""
        step = step_of(fields)
        with self._lock:
            self._scattered[step] += 1
            entry = self.order.scatter_waits.get((step, self._scattered[step]))
        if entry is None or self.board is None or _on_event_loop():
            return
        if not wait_done(self.board, entry, self.patience) and self._history is not None:
            self._history.emit("lockstep-diverged", waiting="the client's scatter for a result",
                               missing=[[entry[0], list(entry[1]), *entry[2:]]],
                               patience=self.patience)

    def _died_with_its_worker(self, fields: Mapping[str, Any]
                              ) -> list[tuple[str, threading.Event, float]]:
        """The notice a fetch waits for: that of the kill its result died with in the
        original, which the client never took (`chaos.harness.death_race`)."""
        key = step_of(fields)
        with self._lock:
            self._fetches[key] += 1
            fault_id = self.order.death_races.lost.get((*key, self._fetches[key]))
        if fault_id is None:
            return []
        return [(f"fault {fault_id} to be noticed", self._noticed[fault_id], FAULT_PATIENCE)]

    def where(self, step: Step) -> str | None:
        """The worker to put `step`'s input on (its scatter event just written): the one
        in the place of the worker its original's went to, or None (anywhere)."""
        with self._lock:
            place = self.order.placements.get((step, self._scattered[step]))
        return self.places.worker(place)

    def placed(self, step: Step) -> None:
        """`step`'s scatter returned (its input is on a worker, or it failed)."""
        with self._lock:
            self._placed[step] += 1

    def priority(self, step: Step) -> int:
        """The Dask priority to submit `step` with (the client is about to): the one that
        starts it where its original started (`chaos.harness.start_order`)."""
        with self._lock:
            self._submitting[step] += 1
            return start_priority(self.order.start_ranks, (step, self._submitting[step]))

    def _wait(self, due: Sequence[tuple[str, threading.Event, float]]) -> None:
        if _on_event_loop():
            return
        for waiting, happened, bound in due:
            if not happened.wait(bound) and self._history is not None:
                self._history.emit("lockstep-diverged", waiting=f"the client for {waiting}",
                                   missing=[], patience=bound)
            # Waited for once: a replay that left its original may stay at this turn
            # for every landmark to come, and would wait its patience out at each.
            happened.set()

    # ------------------------------------------------------------------ the faults

    def before_landing(self, fault_id: str) -> None:
        """Wait until the client has taken each result of the victim that it had taken
        in the original after fault `fault_id` fired (the result won the race against
        the death there), has submitted the step whose scatter beat the kill there, and
        has put on the victim the inputs its original had, and has made the scatter a
        graceful shutdown met there, and until the results done on a graceful
        shutdown's victim just before it fired there are done here, for up to
        `patience` seconds. Not on an event loop's thread."""
        racing = self.order.death_races.taken.get(fault_id, ())
        done_first = self.order.death_races.before_shutdown.get(fault_id, ())
        beaten = self.order.scatters_beaten.get(fault_id)
        inputs = self.order.placed_on_victims.get(fault_id, ())
        met = self.order.shutdown_met_in_scatter.get(fault_id)
        if racing or beaten or inputs or met:  # the client is not held for the firing: it has work
            self.fired(fault_id)
        deadline = time.monotonic() + self.patience
        while True:
            with self._lock:
                missing = [[r[0], list(r[1]), r[2], r[3]] for r in racing
                           if self._taken[r[:3]] < r[3]]
                if beaten:
                    (task_id, index, step), nth = beaten
                    if self._seen[("submit", task_id, index, step)] < nth:
                        missing.append(["submit", task_id, list(index), step, nth])
                missing += [["scatter", task_id, list(index), step, nth]
                            for (task_id, index, step), nth in inputs
                            if self._placed[(task_id, index, step)] < nth]
                missing += [["done", r[0], list(r[1]), r[2], r[3]] for r in done_first
                            if self.board is not None and not marked_done(self.board, r)]
                if met is not None and (self._scatters < met
                                        or time.monotonic() - self._scattered_at < SCATTER_SENT):
                    missing.append(["scatter", met])
                if not missing or self._stopped:
                    return
            if time.monotonic() >= deadline:
                assert self._history is not None
                self._history.emit("lockstep-diverged", waiting=f"fault {fault_id} to land",
                                   missing=missing[:10], patience=self.patience)
                return
            time.sleep(0.001)

    def reruns(self, fault_id: str) -> dict[str, int]:
        """`Places.reruns`, for a target that submits with priorities (others: none)."""
        with self._lock:
            ranked = bool(self._submitting)
        return self.places.reruns(fault_id) if ranked else {}

    def scatter_race(self, fault_id: str) -> ScatterRace | None:
        """The race of a kill the original's client met in a scatter, or None."""
        return self._races.get(fault_id)

    def fired(self, fault_id: str) -> None:
        """Fault `fault_id` is firing (or will not): the client may go on. A fault the
        original's scheduler never noticed (a freeze) has its entry among the results
        where it fired: the results after it may come now, not at its thaw (a 1 s freeze
        held them all, nightly --seed 1357's `s013` and `s014`)."""
        if fault_id in self._fired:
            self._fired[fault_id].set()
        if fault_id in self.order.unnoticed and self.board is not None:
            mark_done(self.board, fault_entry(fault_id))

    def landed(self, fault_id: str) -> None:
        """Fault `fault_id` landed (or will not): a kill held for the client's scatter
        may stop its victim (`chaos.harness.scatter_race.landed_first`)."""
        if fault_id in self._landed:
            self._landed[fault_id].set()

    def settled(self, fault_id: str) -> None:
        """The scheduler noticed fault `fault_id` (or it will not land): the client, and
        the results that came after it in the original, may go on."""
        self.fired(fault_id)
        self.landed(fault_id)
        if fault_id in self._noticed:
            self._noticed[fault_id].set()
        if self.board is not None:
            mark_done(self.board, fault_entry(fault_id))

    def too_early(self, fault_id: str, since: float) -> bool:
        """Whether fault `fault_id`, hit at `since` (monotonic), should wait: the client
        has not yet done what it had done when it fired in the original, or a trigger
        hit that had come by then has not come (`hits_first`). Not after `patience`
        without a landmark (the replay left its original, and says so). The caller asks
        again a little later rather than block: the fault holding this one up may be
        the next to be decided."""
        turn = self.order.hit_turns.get(fault_id, 0)
        with self._lock:
            hits = [other for other in self.order.hits_first.get(fault_id, ())
                    if other not in self._hit]
            if self._stopped or (self._reached >= turn and not hits):
                return False
            if time.monotonic() - max(since, self._moved_at) < self.patience:
                return True
            missing = [[*mark[:2], list(mark[2]), mark[3]]
                       for mark, nth in self.order.landmarks[self._reached:turn]
                       if self._seen[mark] < nth] + [["hit", other] for other in hits]
        assert self._history is not None
        self._history.emit("lockstep-diverged", waiting=f"fault {fault_id}",
                           missing=missing[:10], patience=self.patience)
        return False

    def hit(self, armed: Iterable[str]) -> None:
        """A probe hit came in with these faults armed (their trigger point reached)."""
        with self._lock:
            self._hit.update(armed)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
