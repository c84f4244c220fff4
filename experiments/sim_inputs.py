"""Where the simulator's step inputs live: which workers hold each, and what they cost.

The library's placement (`resilience.replication`): a step input on `copies` workers
(None: every live worker); the run's shared step-0 input on every worker, and on each
one that joins; an input is lost when its last holder is gone. Inline inputs (no
scatter) live in the scheduler's graph: no worker holds them and none is ever lost.

Collections of objects are dicts, not sets: a set iterates in the order of the objects'
addresses, which differ from one process to the next, and the same seed must give the
same run.
"""

from __future__ import annotations

import random
from typing import Any


class PlacedInput:
    __slots__ = ("holders", "jobs", "lost")

    def __init__(self) -> None:
        self.holders: set[int] = set()
        self.jobs: dict[Any, None] = {}  # the simulator's jobs reading it, in order
        self.lost = False


class InputLedger:
    """Holders of every placed input, and the peaks of what workers held."""

    def __init__(self, payload_bytes: int, scatter: bool, rng: random.Random) -> None:
        self._payload_bytes = payload_bytes
        self._scatter = scatter
        self._rng = rng
        self._holding: dict[int, dict[PlacedInput, None]] = {}
        self._total = 0  # copies held, all workers together
        self._distinct = 0  # inputs with at least one copy
        self.shared: PlacedInput | None = None
        self.peak_held = 0  # most inputs one worker held at once
        self.peak_replica_bytes = 0.0  # most bytes of extra copies per live worker

    def join(self, worker_id: int, live: int) -> None:
        """A worker joins (`live` workers now take steps): the replica guard gives it a
        copy of the shared input."""
        self._holding[worker_id] = {}
        if self.shared is not None and not self.shared.lost and self._scatter:
            self._hold(worker_id, self.shared)
            self._note_replicas(live)

    def place_shared(self, live: list[int]) -> PlacedInput:
        """The shared step-0 input, placed on every live worker when none holds it."""
        if self.shared is None or self.shared.lost:
            self.shared = self.place(live, None)
        return self.shared

    def place(self, live: list[int], copies: int | None) -> PlacedInput:
        placed = PlacedInput()
        if not self._scatter:
            return placed
        count = len(live) if copies is None else max(1, copies)
        for worker_id in self._rng.sample(live, min(count, len(live))):
            self._hold(worker_id, placed)
        self._distinct += 1
        self._note_replicas(len(live))
        return placed

    def release(self, placed: PlacedInput) -> None:
        """No job reads `placed` any more: its copies are freed (never the shared one)."""
        if placed is self.shared or not self._scatter:
            return
        for holder in placed.holders:
            self._total -= 1
            self._holding[holder].pop(placed, None)
        placed.holders.clear()
        self._distinct -= 1

    def leave(self, worker_id: int) -> list[PlacedInput]:
        """A worker is gone with its copies; returns the inputs that had no other."""
        lost = []
        for placed in self._holding.pop(worker_id, {}):
            placed.holders.discard(worker_id)
            self._total -= 1
            if not placed.holders:
                placed.lost = True
                self._distinct -= 1
                lost.append(placed)
        return lost

    def _hold(self, worker_id: int, placed: PlacedInput) -> None:
        placed.holders.add(worker_id)
        held = self._holding[worker_id]
        held[placed] = None
        self._total += 1
        self.peak_held = max(self.peak_held, len(held))

    def _note_replicas(self, live: int) -> None:
        extra = self._total - self._distinct
        self.peak_replica_bytes = max(self.peak_replica_bytes,
                                      extra * self._payload_bytes / max(live, 1))
