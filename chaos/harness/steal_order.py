"""Dask's work stealing in the original, kept to in a lockstep replay.

Dask's stealer moves a queued step from a busy worker to an idle one. It asks the
busy worker first, and a frozen worker answers only once thawed: whether the step is
still queued then (and moves) or already started (and stays) is a race at the thaw.
Left to it, replays ran it again and fell the other way (nightly --seed 8642's `s025`:
t6's step 0 ran on the frozen worker after the thaw and died with it at a later
SIGKILL; in its replay the stealer had moved it off, and t6 was delivered).

So the scheduler's membership plugin says what the stealer moved (`step-stolen`), and
a lockstep replay of an original whose stealer moved nothing runs without it. A replay
of one that stole keeps it on: which steps it moves is still Dask's timing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def stealing_in_replay(history: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a lockstep replay of `history` lets Dask's stealer run: unless its original
    ran it (`run-start.stealing`; older histories do not say, and keep it) and it moved
    nothing."""
    start = history[0] if history else {}
    if not start.get("stealing"):
        return True
    return any(event["type"] == "step-stolen" for event in history)
