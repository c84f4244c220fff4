"""The simulator's constants: what each mechanism of a run costs, in real seconds.

Every field is named after the mechanism it prices and is calibrated from measured runs
(`experiments.calibration`), never guessed. `PlacementCosts` turns the per-byte
measurements into the cost of placing one step input under given settings, so that a
study at another payload size or copy count can be priced from the same runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class PlacementCosts:
    """Client-side cost of placing one step input: scatter, copies, registry record.

    Calibrated per byte from the runs at rate 0: the cost with no registry and one copy is
    all scatter; each extra copy and each registry kind adds its measured difference.
    """

    base: float  # seconds per input, whatever its size (round trips, bookkeeping)
    scatter_per_byte: float
    replica_per_byte: float  # per extra copy
    registry_per_byte: tuple[tuple[str, float], ...]  # registry kind -> seconds per byte

    def seconds(self, payload_bytes: int, copies: int, registry: str | None) -> float:
        per_registry = dict(self.registry_per_byte).get(registry or "none", 0.0)
        return self.base + payload_bytes * (self.scatter_per_byte
                                            + max(0, copies - 1) * self.replica_per_byte
                                            + per_registry)


@dataclass(frozen=True)
class RunCosts:
    """What the simulator charges, in real seconds, for one run's mechanisms."""

    startup: float  # run start -> first step submitted (initial scatter, guards)
    end_gap: float  # last delivery -> the run's end
    dispatch: float  # a submitted step starts on an idle worker
    exec_overhead: float  # a step runs this much longer than its drawn duration
    return_latency: float  # a finished step's result reaches the client
    placement: float  # the client places one step input (scatter, copies, registry)
    detection: float  # a worker loss -> the client sees the step's error
    resubmit: float  # the error -> the step is submitted again from the registry
    reschedule: float  # a worker loss -> Dask reruns a step whose input survived elsewhere
    restart: float  # a SIGKILLed worker -> its nanny's new worker has joined
    notice_leave: float  # a graceful close (SIGTERM to the nanny) -> the worker has left
    steal_after: float  # a step queued behind a busy worker waits this long before an
    # idle worker steals it (fitted to the fault-free runs: Dask balances, not at once)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
