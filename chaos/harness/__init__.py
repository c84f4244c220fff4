"""Where a kill lands: the cluster, the faults, the probes' coordinator, the runner, targets.

    with ChaosCluster.local(n_workers=3) as cluster:
        record = run_schedule(schedule, "resilience", {"task_registry": "memory"},
                              Workload(), cluster, out="runs/1")

`ChaosCluster` keeps one Dask cluster ready for many runs; `Inflictor` is the one place
that kills, stops or retires workers; the `Coordinator` fires a schedule's faults at
the probes' logical points; `run_schedule` runs one schedule against one target,
bounded in time, and writes the history.
"""

from chaos.harness.cluster import ChaosCluster, ClusterSnapshot
from chaos.harness.inflict import Inflictor, Landing, Victim
from chaos.harness.processes import process_state, process_tree
from chaos.harness.refill import FleetRefill, RefillPolicy
from chaos.harness.runner import RunRecord, RunStatus, run_schedule
from chaos.harness.targets import TARGETS, Target, TargetConfig, TargetRun, make_target
from chaos.history import DEFAULT_REFILL_DELAY

__all__ = [
    "DEFAULT_REFILL_DELAY",
    "TARGETS",
    "ChaosCluster",
    "ClusterSnapshot",
    "FleetRefill",
    "Inflictor",
    "Landing",
    "RefillPolicy",
    "RunRecord",
    "RunStatus",
    "Target",
    "TargetConfig",
    "TargetRun",
    "Victim",
    "make_target",
    "process_state",
    "process_tree",
    "run_schedule",
]
