"""Worker-side probes: what an instrumented protocol reports, and where it holds for a fault.

A protocol calls `checkpoints()` and `progress(f)` at its logical points (the synthetic
workload does; any protocol may): outside a probed run both do nothing. The harness
wraps a chain with `probed(protocols, plan)`; on the worker, each step then reports its
start, progress and outcome, and holds at the points where the plan arms a fault, until
the fault has landed. Dask is imported only on the worker, when a probe runs.
"""

from chaos.probes.plan import DEFAULT_TOPIC, ArmedPoint, ProbePlan
from chaos.probes.worker import (
    ProbedProtocol,
    checkpoints,
    flush_marker,
    probed,
    progress,
    release_hold,
    release_run,
)

__all__ = [
    "DEFAULT_TOPIC",
    "ArmedPoint",
    "ProbePlan",
    "ProbedProtocol",
    "checkpoints",
    "flush_marker",
    "probed",
    "progress",
    "release_hold",
    "release_run",
]
