"""The fault coordinator: decides when each fault of a schedule fires and at which worker.

It is policy only. It reads the worker probes' reports and the scheduler's membership
events (`chaos.harness.cluster.ChaosCluster` hands them over on the client's event loop),
keeps what it needs to resolve triggers and roles, and hands the enactment to
`chaos.harness.inflict.Inflictor`. Decisions run on a thread of their own: a kill never
blocks the event loop, and faults fire one at a time, in the order they arose.

A fault is recorded in the history once its effect is settled
(`chaos.harness.fired_faults`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from chaos.harness.fired_faults import Fired, FiredFaults
from chaos.harness.inflict import Inflictor, Landing, Victim
from chaos.harness.lockstep import Lockstep
from chaos.harness.observations import RunObservations
from chaos.harness.replay_landing import ReplayLanding
from chaos.harness.retire_moves import RetireMoves
from chaos.harness.unfired import Deferral, never_fired_firings, unfinished_reason
from chaos.harness.victims import Choice, FindHolders, choose_victim
from chaos.history import HistoryWriter, WorkerProcess, same_process
from chaos.spec import (
    ABRUPT_KINDS,
    GRACEFUL_KINDS,
    SCHEDULER_KINDS,
    AtTime,
    Fault,
    FaultSchedule,
    Poisson,
    TaskId,
)

# A logical fault whose role has no worker at its trigger point waits for the next
# execution of that point this many times, then is skipped.
MAX_DEFERRALS = 5

# Keys, of each retirement that lost scattered data, whose stories the run records.
STORIED_KEYS = 5

# Releases a held probe: (worker address, hold id, decisions by fault id, wait=...).
ReleaseHold = Callable[..., None]
# The live workers now: address -> Victim (pid and nanny as far as known).
LiveWorkers = Callable[[], dict[str, Victim]]


def _among(address: str | None, pid: int | None, workers: set[WorkerProcess]) -> bool:
    return any(same_process((address, pid), worker) for worker in workers)


class Coordinator:
    """Fires one schedule's faults during one run and writes their events to the history."""

    def __init__(self, *, schedule: FaultSchedule, history: HistoryWriter, inflictor: Inflictor,
                 release_hold: ReleaseHold, find_holders: FindHolders, live_workers: LiveWorkers,
                 started_at: float, on_worker_left: Callable[[str], None] | None = None,
                 lockstep: Lockstep | None = None, moves: RetireMoves | None = None) -> None:
        self.schedule = schedule
        self.history = history
        self.inflictor = inflictor
        self._release_hold = release_hold
        self._find_holders = find_holders
        self._live_workers = live_workers
        self._started_at = started_at
        self._on_worker_left = on_worker_left  # the fleet's refill, told of each departure
        self._lockstep = lockstep  # a replay keeping to its original's order, or None
        self._replay = (ReplayLanding(lockstep, inflictor, history)
                        if lockstep is not None else None)
        self._moves = moves  # where a retirement's data goes, or None: not recorded
        self._faults = dict(schedule.items())
        self.seen = RunObservations()
        self.untold: list[str] = []  # keys a retirement lost, whose stories to record
        self._spent: set[str] = set()  # fault ids (and Poisson firings) fired or skipped
        self._fired = FiredFaults(history, self.seen, lockstep)
        self._skipped: set[str] = set()
        self._deferrals: dict[str, Deferral] = {}
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._landers: list[threading.Thread] = []
        self._timed = sorted(
            (offset, f"{fid}.{n}" if isinstance(fault.trigger, Poisson) else fid, fid)
            for fid, fault in schedule.items() if isinstance(fault.trigger, (AtTime, Poisson))
            for n, offset in enumerate(fault.trigger.times())
        )
        self._thread = threading.Thread(target=self._loop, name="chaos-coordinator", daemon=True)

    # ------------------------------------------------------------------ event loop side

    def on_worker_event(self, message: dict[str, Any]) -> None:
        """A probe report from a worker (called on the client's event loop)."""
        kind = message.pop("type", None)
        message.pop("run_id", None)
        if kind == "flush":
            self.seen.record_flush(message["token"])
            return
        self.seen.record(kind, message)
        self.history.emit(kind, **message)
        if kind == "probe" and message.get("hold"):
            self._inbox.put(("hit", message))

    def on_cluster_event(self, when: float, message: dict[str, Any]) -> None:
        """A scheduler membership event (topic "all"; called on the client's event loop)."""
        action = message.get("action")
        if action == "scatter-placed":
            self.history.emit("scatter-placed", time=when, keys=message.get("keys") or [],
                              workers=message.get("workers") or [])
        elif action == "step-stolen":
            self.history.emit("step-stolen", time=when, key=message.get("key"),
                              victim=message.get("victim"), thief=message.get("thief"))
        elif action == "add-worker":
            self.history.emit("worker-added", time=when, worker=message.get("worker"))
        elif action == "remove-worker":
            address = message.get("worker")
            lost = sorted(map(str, message.get("lost-scattered-tasks") or ()))
            self.history.emit(
                "worker-removed", time=when, worker=address,
                expected=bool(message.get("expected")),
                processing=len(message.get("processing-tasks") or ()),
                lost_computed=len(message.get("lost-computed-tasks") or ()),
                lost_scattered=len(lost), lost_keys=lost[:20],
                lost_computed_keys=sorted(map(str, message.get("lost-computed-tasks") or ()))[:20],
            )
            if message.get("retired"):  # a retirement that lost data: tell its story
                self.untold.extend(lost[:STORIED_KEYS])
            self.seen.record_removal(str(address), when)
            self._inbox.put(("removed", address))
            if self._on_worker_left is not None:
                self._on_worker_left(str(address))

    def on_thaw(self, address: str, how: str, when: float) -> None:
        """A freeze ended (SIGCONT on time, or the run ended): record it. One not noticed
        by then never was: its event is written now, lest a later removal be taken for it."""
        for fired in self._fired.thawed(address):
            self.history.emit("fault-ended", time=when, fault_id=fired.fault_id, worker=address,
                              how=how)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread.start()

    def flushed(self, token: str) -> bool:
        return self.seen.flushed(token)

    def finish(self) -> dict[str, int]:
        """Stop deciding; record faults still open, faults never fired, unfinished executions."""
        self._inbox.put(("stop", None))
        self._thread.join(timeout=30)
        for lander in self._landers:
            lander.join(timeout=30)
        self._fired.write_the_rest()
        unfired = {} if self._lockstep is None else self._lockstep.order.unfired
        for firing_id, fault, why in never_fired_firings(
                self._faults, self._timed, self._spent, original=unfired,
                deferrals=self._deferrals, nth_task=lambda fault: self._resolve_nth(fault, {})):
            self._skip(firing_id, fault, *why)
        victims = {f.worker: f"{f.fault_id} ({f.fault.kind})" for f in self._fired.all()}
        for execution_id, execution in self.seen.unfinished().items():
            self.history.emit("info", execution=execution_id,
                              reason=unfinished_reason(execution.worker, victims))
        return {"fired": len(self._fired), "skipped": len(self._skipped)}

    # ------------------------------------------------------------------ decisions

    def _loop(self) -> None:
        timed = list(self._timed)
        while True:
            wait = None
            if timed:
                wait = max(0.0, self._started_at + timed[0][0] - time.time())
            try:
                kind, item = self._inbox.get(timeout=wait)
            except queue.Empty:
                offset, firing_id, fault_id = timed.pop(0)
                try:
                    self._fire_timed(firing_id, self._faults[fault_id], offset)
                except Exception as error:
                    self.history.emit("harness-error", during="timed",
                                      error=f"{type(error).__name__}: {error}")
                continue
            if kind == "stop":
                return
            try:
                if kind == "hit":
                    self._on_hit(item)
                elif kind == "removed":
                    self._fired.settle_notices()
            except Exception as error:  # one bad decision must not stop the rest
                self.history.emit("harness-error", error=f"{type(error).__name__}: {error}",
                                  during=kind)
                if kind == "hit":
                    self._release_hold(item["worker"], item["hold"], {})

    def _on_hit(self, hit: dict[str, Any]) -> None:
        early = self._too_early(hit)
        armed = [fault_id for fault_id in hit.get("armed", ()) if fault_id not in early]
        released = bool(hit.get("released"))
        if early and not any(f in self._faults and f not in self._spent for f in armed):
            released = released or self._let_go_before_turn(hit, early)
            self._later({**hit, "released": released})  # nothing due yet
            return
        decisions: dict[str, Any] = {}
        holder_died = False
        for fault_id in armed:
            fault = self._faults.get(fault_id)
            if fault is None or fault_id in self._spent:
                decisions[fault_id] = {"consumed": True}
                continue
            watched = self._resolve_nth(fault, hit)
            if watched is not None and watched != hit.get("task_id"):
                decisions[fault_id] = {"task": watched}
                continue
            if watched is None and getattr(fault.trigger, "nth", None) is not None:
                continue  # fewer tasks started than n: this one is not the n-th
            decisions[fault_id] = {"consumed": True}
            self._spent.add(fault_id)
            trigger = {**fault.trigger.to_json(), "task_id": hit.get("task_id"),
                       "step": hit.get("step"), "fraction": hit.get("fraction"),
                       "point": hit.get("point"), "execution": hit.get("execution"),
                       "key": self.seen.key_of(hit.get("execution"))}
            choice = self._choose(fault_id, fault, hit)
            if choice.victim is None:
                reason = choice.reason or "no worker to hit"
                if self._defer(fault_id, fault, trigger, reason, hit.get("task_id")):
                    # Hold the fault until it can land: it stays armed for the watched
                    # task, and fires at the same logical point of its next execution.
                    decisions[fault_id] = {"task": hit.get("task_id")}
                    continue
                self._skip(fault_id, fault, trigger, reason)
                continue
            victim = choice.victim
            if (fault.kind in GRACEFUL_KINDS and not released
                    and not _among(hit["worker"], self.seen.pid_of(hit.get("execution")),
                                   self._taken_down())):
                # A graceful shutdown waits for running tasks: let the held one go first.
                # Not on a worker a fault of this run took down (this hit's abrupt one, or
                # an earlier retire): a release sent there would wait out its whole bound
                # for an answer, and a leaving worker's probe is let go below regardless.
                self._release_hold(hit["worker"], hit["hold"], decisions, wait=True)
                released = True
            landing = self._enact(fault_id, fault, trigger, victim, choice.extra)
            holder_died |= (victim.address == choice.running_on and landing is not None
                            and fault.kind in ABRUPT_KINDS and landing.landed_at is not None)
        if early:  # the faults not due yet come back on this hit, decided later
            self._later({**hit, "armed": sorted(early), "released": released})
        elif not released and not holder_died:
            self._release_hold(hit["worker"], hit["hold"], decisions)

    def _too_early(self, hit: dict[str, Any]) -> set[str]:
        """In a lockstep replay: the faults of this hit not due yet (`Lockstep.too_early`).
        The others are decided now, as the original decided them, one after the other;
        the hit comes back for these, its probe still held unless a graceful shutdown
        among the others let it go (a second release then finds no hold)."""
        if self._lockstep is None:
            return set()
        since = hit.setdefault("hit_at", time.monotonic())
        self._lockstep.hit(hit.get("armed", ()))
        return {fault_id for fault_id in hit.get("armed", ())
                if fault_id in self._faults and fault_id not in self._spent
                and self._lockstep.too_early(fault_id, since)}

    def _let_go_before_turn(self, hit: dict[str, Any], early: set[str]) -> bool:
        """Let the probe go now if the faults it waits for are all graceful shutdowns, as
        the original let it go as soon as it decided them: a graceful shutdown waits for
        running tasks, so the release came first and the firing after it, and the fault's
        turn may be after the client took this very result. Held until then, the result
        never comes (nightly --seed 9753's `s007`). Whether it was let go is returned."""
        if not all(self._faults[fault_id].kind in GRACEFUL_KINDS for fault_id in early):
            return False
        if _among(hit["worker"], self.seen.pid_of(hit.get("execution")), self._taken_down()):
            return False  # as in `_on_hit`: a leaving worker's probe is let go regardless
        self._release_hold(hit["worker"], hit["hold"], {}, wait=True)
        return True

    def _later(self, hit: dict[str, Any]) -> None:
        threading.Timer(0.005, self._inbox.put, (("hit", hit),)).start()

    def _fire_timed(self, firing_id: str, fault: Fault, offset: float) -> None:
        self._spent.add(firing_id)
        fault_id = firing_id.split(".")[0]
        trigger = {**fault.trigger.to_json(), "at": offset}
        choice = self._choose(firing_id, fault, None)
        if choice.victim is None:
            self._skip(firing_id, fault, trigger, choice.reason or "no worker to hit")
            return
        self._spent.add(fault_id)
        self._enact(firing_id, fault, trigger, choice.victim, choice.extra)

    def _enact(self, fault_id: str, fault: Fault, trigger: dict[str, Any], victim: Victim,
               extra: dict[str, Any]) -> Landing | None:
        """Enact a fault. Abrupt kinds and freezes land in ms, and the held probe waits for
        them; a graceful shutdown (it waits for running tasks, or moves data) and a kill
        held for the client's scatter land in the background while decisions go on."""
        if self._replay is not None:  # the results that beat the death there, here too
            extra = {**extra, **self._replay.before(fault_id, fault.kind, victim.address)}
        fired = Fired(fault_id, fault, trigger, victim.address, victim.pid, time.time(),
                      extra=extra)
        self._fired.add(fired)
        race = self._lockstep.scatter_race(fault_id) if self._lockstep else None
        held = self.inflictor.held_kill(fault.kind, victim, race) if race else None
        if self._lockstep is not None:  # the client goes on as the fault lands, as it did
            self._lockstep.fired(fault_id)
        if fault.kind in GRACEFUL_KINDS or held is not None:
            thread = threading.Thread(target=self._land, args=(fired, victim, held),
                                      daemon=True, name=f"chaos-{fault.kind}-{fault_id}")
            self._landers.append(thread)
            thread.start()
            return None
        return self._land(fired, victim)

    def _land(self, fired: Fired, victim: Victim,
              held: Callable[[], Landing] | None = None) -> Landing:
        fault = fired.fault
        # Where a retirement's data goes: recorded, or sent where the original's went.
        roles = (self._moves.before(fired.fault_id, victim.address)
                 if self._moves is not None and fault.kind == "retire" else {})
        held_open = (self._replay.retire(fired.fault_id, victim)
                     if self._replay is not None and fault.kind == "retire" else None)
        if held is not None:
            landing = held()
        elif held_open is not None:
            landing, extra = held_open
            fired.extra.update(extra)
        else:
            landing = self.inflictor.inflict(fault.kind, victim, freeze_for=fault.freeze_for,
                                             notice=fault.notice)
        if self._moves is not None and fault.kind == "retire":
            fired.extra.update(self._moves.after(victim.address, roles))
        self._fired.landed(fired, landing)
        if self._lockstep is not None:
            self._lockstep.landed(fired.fault_id)
        self._fired.settle_notices()
        return landing

    def _defer(self, fault_id: str, fault: Fault, trigger: dict[str, Any], reason: str,
               task: Any) -> bool:
        """Re-arm a logical fault whose role has no worker right now (its victim is leaving
        with another fault, its input is being re-made), at most MAX_DEFERRALS times.
        Skipping it would make the run inconclusive, and its replays differ."""
        count = self._deferrals[fault_id].count if fault_id in self._deferrals else 0
        if count >= MAX_DEFERRALS:
            return False
        self._deferrals[fault_id] = Deferral(count + 1, reason, task)
        self._spent.discard(fault_id)
        self.history.emit("fault-deferred", fault_id=fault_id, kind=fault.kind, trigger=trigger,
                          reason=reason, deferrals=count + 1)
        return True

    def _skip(self, fault_id: str, fault: Fault, trigger: dict[str, Any], reason: str,
              cause: str = "no-victim") -> None:
        self._skipped.add(fault_id)
        self._spent.add(fault_id)
        if self._lockstep is not None:
            self._lockstep.settled(fault_id)
        self.history.emit("fault-skipped", fault_id=fault_id, kind=fault.kind, trigger=trigger,
                          target=fault.target.to_json(), reason=reason, cause=cause)

    # ------------------------------------------------------------------ roles

    def _resolve_nth(self, fault: Fault, hit: dict[str, Any]) -> TaskId | None:
        """The task a trigger watches: its task_id, or the n-th task to start once known."""
        trigger = fault.trigger
        if getattr(trigger, "task", None) is not None:
            return trigger.task  # type: ignore[union-attr]
        nth = getattr(trigger, "nth", None)
        return self.seen.nth_started(nth) if nth is not None else None

    def _choose(self, fault_id: str, fault: Fault, hit: dict[str, Any] | None) -> Choice:
        if fault.kind in SCHEDULER_KINDS:  # no worker role: the scheduler itself
            return Choice(Victim("scheduler", None, None))
        taken_down = self._taken_down()
        live = {address: victim for address, victim in self._live_workers().items()
                if not _among(address, victim.pid, taken_down)}
        original = self._lockstep.places.original_victim(fault_id) if self._lockstep else None
        return choose_victim(fault_id, fault, hit, seed=self.schedule.seed, seen=self.seen,
                             live=live, find_holders=self._find_holders, original=original)

    def _taken_down(self) -> set[WorkerProcess]:
        """Workers an earlier fault of this run killed or is removing. The scheduler may
        not have noticed yet; a second fault there would only wait on a dead process (5 s,
        the landing bound, with every held probe of the run waiting too) and claim a
        landing it did not cause. Such a fault is deferred instead."""
        return {(fired.worker, fired.pid) for fired in self._fired.all()
                if fired.fault.kind in ABRUPT_KINDS | GRACEFUL_KINDS
                and (fired.landing is None or fired.landing.landed_at is not None)}
