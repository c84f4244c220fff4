"""A lockstep replay's own workers and keys, in the places of its original's.

A replay shares neither its original's worker addresses nor its Dask keys. It matches
workers by place (their order among the run's first workers, by address:
`first_workers`) and steps by submission (which submit of which step:
`submitted_key`). `Places` reads what the original's faults and moves did to its
workers and steps as what to do to this replay's.
"""

from __future__ import annotations

import threading

from chaos.harness.death_race import numbered
from chaos.harness.replay_order import ReplayOrder, first_workers
from chaos.harness.retire_moves import Role
from chaos.harness.steal_order import ThawSteal, submitted_key
from chaos.history import HistoryWriter


class Places:
    """This replay's workers and keys for its original's (`Lockstep.places`)."""

    def __init__(self, order: ReplayOrder) -> None:
        self.order = order
        self._history: HistoryWriter | None = None
        self.workers: list[str] = []  # this replay's first workers, by address
        self._lock = threading.Lock()
        self._asked: set[ThawSteal] = set()  # steals asked at a thaw, each once
        self._stopped = False

    def start(self, history: HistoryWriter) -> None:
        """The replay's history has its first workers (its `run-start`)."""
        self._history = history
        self.workers = first_workers(history.events)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True

    def worker(self, place: int | None) -> str | None:
        """This replay's worker in `place` among its first workers by address, if any."""
        return self.workers[place] if place is not None and place < len(self.workers) else None

    def original_victim(self, fault_id: str) -> str | None:
        """The worker here in the place of the one `fault_id` hit in the original (among
        the first workers by address), if the original hit one of those."""
        return self.worker(self.order.victims.get(fault_id))

    def retire_recipients(self, fault_id: str) -> dict[Role, str]:
        """Where retirement `fault_id`'s keys go here: the workers in the places of those
        its original's went to, by role (`chaos.harness.retire_moves`)."""
        return {role: worker
                for role, place in self.order.retire_moves.get(fault_id, {}).items()
                if (worker := self.worker(place)) is not None}

    def reruns(self, fault_id: str) -> dict[str, int]:
        """The Dask priority, by this replay's key, of each step that fault `fault_id`
        cut short in the original (`chaos.harness.start_order.rerun_priorities`)."""
        priorities = self.order.rerun_priorities.get(fault_id, {})
        if self._history is None or not priorities:
            return {}
        keys = {submission: submitted_key(self._history.events, submission)
                for submission in priorities}
        return {key: priorities[submission]
                for submission, key in keys.items() if key is not None}

    def held_open(self, fault_id: str) -> tuple[list[str], bool]:
        """The keys of the steps that retirement `fault_id` is held open for here (each
        step's latest submission): those whose results its original's victim finished
        as it retired, and that reached the scheduler (`DeathRaces.moved_late`,
        `lost_late`); and whether its victim's removal lost them all there, and should
        here (else the retirement moves them)."""
        races = self.order.death_races
        moved, lost = races.moved_late.get(fault_id, ()), races.lost_late.get(fault_id, ())
        late = {result[:3] for result in (*moved, *lost)}
        if not late or self._history is None:
            return [], False
        keys = {step: str(event["key"])
                for event, step, _ in numbered(self._history.events, "submit")
                if step in late and event.get("key")}
        return sorted(keys.values()), not moved

    def steals_before_thaw(self, address: str) -> list[tuple[str, str]]:
        """The steals to ask of `address` as its freeze ends, as the original's stealer
        asked them there (`chaos.harness.steal_order`): (key, thief), each once."""
        if self._history is None or not self.order.steals_at_thaw:
            return []  # (most replays: no copy of the history at every thaw)
        events = self._history.events
        steals = []
        with self._lock:
            if self._stopped:
                return []
            for steal in self.order.steals_at_thaw:
                thief = self.worker(steal.thief)
                key = submitted_key(events, steal.submission)
                if (steal not in self._asked and thief is not None and key is not None
                        and self.original_victim(steal.fault_id) == address):
                    self._asked.add(steal)
                    steals.append((key, thief))
        return steals
