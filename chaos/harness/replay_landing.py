"""What a lockstep replay does as one of its faults lands.

Two things, read from the original (`chaos.harness.lockstep.Lockstep`); what acts on
a worker goes through the `Inflictor`, as every fault does:

- before any fault lands, the replay waits until the client has done what it had done
  then (`Lockstep.before_landing`), and, but for a freeze, the steps the fault cuts
  short on its victim are ranked where they started again in the original
  (`chaos.harness.start_order`);
- a retirement is held open until the steps its original's victim finished as it
  retired, whose results reached the scheduler, are done here; then it moves them, or
  removes its victim and loses them, as the original's did (`chaos.harness.death_race`'s
  `moved_late`, `lost_late`).
"""

from __future__ import annotations

from typing import Any

from chaos.harness.inflict import Inflictor, Landing, Victim
from chaos.harness.lockstep import Lockstep
from chaos.history import HistoryWriter


class ReplayLanding:
    """One lockstep replay's side of its faults' landings."""

    def __init__(self, lockstep: Lockstep, inflictor: Inflictor, history: HistoryWriter) -> None:
        self.lockstep = lockstep
        self.inflictor = inflictor
        self.history = history

    def before(self, fault_id: str, kind: str, address: str) -> dict[str, Any]:
        """Before fault `fault_id` (`kind`) lands on `address`: wait for the client as
        `Lockstep.before_landing` does; then rank the steps there that it cuts short where
        they started again in the original. The fault event's `reranked` ([key,
        priority] of each), if any."""
        self.lockstep.before_landing(fault_id)
        reruns = self.lockstep.reruns(fault_id) if kind != "freeze" else {}
        if not reruns:
            return {}
        try:
            return {"reranked": self.inflictor.rerank(address, reruns)}
        except Exception as error:  # the scheduler did not answer: go on, and say so
            self.history.emit("lockstep-diverged", waiting="the reruns' ranks",
                              missing=[[type(error).__name__]])
            return {"reranked": []}

    def retire(self, fault_id: str, victim: Victim) -> tuple[Landing, dict[str, Any]] | None:
        """Retirement `fault_id` held open until the steps `Places.held_open` names are
        done on `victim`, and the fault event's `held_open` (their keys, and whether
        the retirement ended by removing its victim: `lost`); None when it holds none
        open."""
        keys, lose = self.lockstep.places.held_open(fault_id)
        if not keys:
            return None
        patience = self.lockstep.patience
        landing, running = self.inflictor.retire_holding_open(victim, keys, patience,
                                                              lose=lose)
        if running:
            self.history.emit("lockstep-diverged", waiting=f"fault {fault_id}'s steps",
                              missing=[["processing", key] for key in running],
                              patience=patience)
        return landing, {"held_open": {"keys": keys, "lost": lose}}
