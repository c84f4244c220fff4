"""The faults a run fired, each written to the history once its effect is settled.

A fault is recorded when the scheduler noticed its worker leave, when its freeze ended,
or when the run ends (then `noticed_at` is null). Notices, a freeze's timer and the
run's end may race: each fault is written once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from chaos.harness.inflict import Landing
from chaos.harness.lockstep import Lockstep
from chaos.harness.observations import RunObservations
from chaos.history import HistoryWriter
from chaos.spec import Fault


@dataclass
class Fired:
    fault_id: str
    fault: Fault
    trigger: dict[str, Any]
    worker: str
    pid: int | None  # the worker's process: a restarted one may come back at `worker`
    fired_at: float  # when the harness decided; the landing has the exact firing time
    landing: Landing | None = None
    noticed_at: float | None = None
    ended: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # more fields of its event


class FiredFaults:
    """The fired faults of one run, by id; thread-safe."""

    def __init__(self, history: HistoryWriter, seen: RunObservations,
                 lockstep: Lockstep | None) -> None:
        self._history = history
        self._seen = seen
        self._lockstep = lockstep  # told as each fault settles
        self._lock = threading.Lock()
        self._fired: dict[str, Fired] = {}
        self._written: set[str] = set()

    def add(self, fired: Fired) -> None:
        with self._lock:
            self._fired[fired.fault_id] = fired

    def __len__(self) -> int:
        return len(self._fired)

    def all(self) -> list[Fired]:
        with self._lock:
            return list(self._fired.values())

    def landed(self, fired: Fired, landing: Landing) -> None:
        with self._lock:
            fired.landing = landing

    def thawed(self, address: str) -> list[Fired]:
        """The freezes of `address` still open, now ended and written: one not noticed
        by now never was, lest a later removal be taken for it."""
        with self._lock:
            freezes = [f for f in self._fired.values()
                       if f.worker == address and f.fault.kind == "freeze" and not f.ended]
            for fired in freezes:
                fired.ended = True
        for fired in freezes:
            self._write(fired)
        return freezes

    def settle_notices(self) -> None:
        """Write each landed fault whose worker the scheduler has since removed."""
        for fired in self.all():
            if fired.fault_id in self._written or fired.ended or fired.landing is None:
                continue
            when = self._seen.claim_removal(fired.worker, since=fired.fired_at - 1.0)
            if when is not None:
                fired.noticed_at = when
                self._write(fired)

    def write_the_rest(self) -> None:
        """At the run's end: write each fault not written yet."""
        with self._lock:
            pending = [f for f in self._fired.values() if f.fault_id not in self._written]
        for fired in pending:
            self._write(fired)

    def _write(self, fired: Fired) -> None:
        with self._lock:
            if fired.fault_id in self._written:
                return
            self._written.add(fired.fault_id)
        landing = fired.landing or Landing(fired.fault.kind, fired.worker, None, "nanny",
                                           fired.fired_at, None, "the fault did not finish landing")
        if self._lockstep is not None:
            self._lockstep.settled(fired.fault_id)
        self._history.emit(
            "fault", fault_id=fired.fault_id, kind=fired.fault.kind, trigger=fired.trigger,
            target=fired.fault.target.to_json(), worker=landing.worker, pid=landing.pid,
            fired_at=landing.fired_at, landed_at=landing.landed_at, noticed_at=fired.noticed_at,
            mechanism=landing.mechanism, error=landing.error, freeze_for=fired.fault.freeze_for,
            **({"notice": fired.fault.notice, "killed_after_notice": landing.killed_after_notice}
               if fired.fault.kind == "preempt" else {}),
            **fired.extra,
        )
