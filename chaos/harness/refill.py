"""Refilling the fleet during a run: the harness plays the autoscaler.

A fleet of spot workers is refilled by its autoscaler: a worker that leaves for good
(retired, or its nanny closed by a SIGTERM) is replaced some time later. Without that,
three graceful removals empty a three-worker LocalCluster and the system under test
waits for workers until the run's time bound (issue 11's hung runs).

Policy apart from mechanism, as in `distributed.active_memory_manager`:

- `RefillPolicy` (plain data) says whether and how soon to replace;
- `FleetRefill` applies it during one run: each time the scheduler removes a worker it
  waits `delay` seconds, then asks the backend to replace whatever left for good, and
  records a `worker-refill` event in the history;
- the backend does the replacing, through one method: `replace_departed() -> int`
  (how many workers it started). `ChaosCluster` implements it for a LocalCluster; a
  backend that starts `dask worker` processes implements the same method.

A worker that the nanny restarts by itself (SIGKILL, exit, segfault) needs no refill:
`replace_departed` starts nothing then, and nothing is recorded.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Protocol

from chaos.errors import ChaosError
from chaos.history import DEFAULT_REFILL_DELAY, HistoryWriter

# Seconds from a worker's removal to its replacement's start. Well under the run's time
# bound (60 s) and the library's worker wait, and above the scheduler's own reaction
# (a retire ends in about 0.1 s), so the run does see a shrunken fleet for a while.
# A departure that needed no replacement yet is looked at again this often, this many
# times (bounded: 2 s in all).
RECHECK_EVERY = 0.25
RECHECKS = 8


@dataclass(frozen=True)
class RefillPolicy:
    """Replace workers that left for good `delay` seconds after they left (None: never)."""

    delay: float | None = DEFAULT_REFILL_DELAY

    def __post_init__(self) -> None:
        delay = self.delay
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float))
                                  or not math.isfinite(delay) or delay < 0):
            raise ChaosError(
                f"refill delay={delay!r}: use a number of seconds >= 0 (how long the "
                "autoscaler takes to replace a worker), or None to never replace one."
            )

    @property
    def enabled(self) -> bool:
        return self.delay is not None

    def describe(self) -> str:
        return "off" if self.delay is None else f"after {self.delay:g} s"


class ReplacesWorkers(Protocol):
    """What a backend offers the refill: start replacements for departed workers."""

    def replace_departed(self) -> int: ...


class FleetRefill:
    """Applies a `RefillPolicy` during one run; `close()` cancels what is still pending."""

    def __init__(self, policy: RefillPolicy, backend: ReplacesWorkers,
                 history: HistoryWriter) -> None:
        self.policy = policy
        self._backend = backend
        self._history = history
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._closed = False
        self.started = 0  # replacement workers started during the run

    def worker_left(self, address: str) -> None:
        """The scheduler removed `address`: replace it after the delay if it left for good."""
        if self.policy.delay is not None:
            self._later(self.policy.delay, address, 0)

    def _later(self, delay: float, address: str, attempt: int) -> None:
        timer = threading.Timer(delay, self._refill, (address, attempt))
        timer.daemon = True
        with self._lock:
            if self._closed:
                return
            self._timers.append(timer)
        timer.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def _refill(self, address: str, attempt: int) -> None:
        with self._lock:
            if self._closed:
                return
        try:
            started = self._backend.replace_departed()
        except Exception as error:  # a failed refill is evidence, not a crash
            self._history.emit("harness-error", during="refill",
                               error=f"{type(error).__name__}: {error}")
            return
        if not started and attempt < RECHECKS:
            # The scheduler may drop a worker before its nanny says it is closing: look
            # again shortly (a worker its nanny restarts never needs a replacement).
            self._later(RECHECK_EVERY, address, attempt + 1)
            return
        if started:
            self.started += started
            self._history.emit("worker-refill", left=address,
                               started=started, delay=self.policy.delay)
