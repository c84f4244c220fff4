"""What one simulated run is: its spec (chain, cluster, settings, preemption sources)
and its outcome. Plain frozen data, shared by the simulator and the study code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from experiments.durations import Duration

Status = Literal["completed", "failed", "hung"]
DASK_ALLOWED_FAILURES = 3  # distributed.scheduler.allowed-failures, Dask's default
LIBRARY_MAX_IN_FLIGHT = 1024  # ResilienceConfig.max_in_flight's default


@dataclass(frozen=True)
class PreemptionSource:
    """Poisson preemptions over the whole cluster, each hitting a uniformly random live worker.

    `rate` is per real second for the cluster; `limit` caps the firings (the harness's
    Poisson trigger does); `notice` is the time from warning to kill (0: sudden);
    `replacement` the delay before a new worker joins (None: never in this run).
    """

    kind: str
    rate: float
    notice: float
    replacement: float | None
    limit: int | None = None
    times: tuple[float, ...] | None = None  # exact firing times (a real run's), else drawn


@dataclass(frozen=True)
class SimSpec:
    """One simulated run: the chain, the cluster, the settings and the preemptions."""

    workers: int
    tasks: int
    steps: int
    fanout: tuple[int, ...]
    payload_bytes: int
    duration: Duration  # real seconds
    duration_seed: int
    copies: int | None  # holders of each step input; None: every worker
    registry: str | None
    max_attempts: int
    scatter: bool
    sources: tuple[PreemptionSource, ...]
    timeout: float
    max_in_flight: int = LIBRARY_MAX_IN_FLIGHT
    allowed_failures: int = DASK_ALLOWED_FAILURES


@dataclass(frozen=True)
class SimOutcome:
    status: Status
    makespan: float
    tasks_failed: int
    delivered: int
    expected: int
    kills: int
    useful_seconds: float
    wasted_seconds: float
    peak_worker_input_bytes: int
    peak_replica_bytes_per_worker: float

    def to_row(self, workers: int) -> dict[str, Any]:
        return {"status": self.status, "makespan": self.makespan,
                "failed": self.tasks_failed, "delivered": self.delivered,
                "expected": self.expected, "kills": self.kills,
                "useful_seconds": self.useful_seconds, "wasted_seconds": self.wasted_seconds,
                "goodput": (self.useful_seconds / (workers * self.makespan)
                            if self.makespan > 0 else 0.0),
                "peak_worker_input_bytes": self.peak_worker_input_bytes,
                "peak_replica_bytes_per_worker": self.peak_replica_bytes_per_worker}
