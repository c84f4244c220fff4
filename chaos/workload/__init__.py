"""A PyRosetta-shaped synthetic workload whose every output is known in advance (its oracle).

    workload = Workload(n_tasks=8, n_steps=2, payload_bytes=100_000, step_seconds=0.05)
    workload.protocols(), workload.tasks(), workload.initial_input(), workload.oracle()
"""

from chaos.workload.synthetic import (
    PoseLineage,
    SyntheticPose,
    SyntheticStep,
    Workload,
    content_hash,
)

__all__ = ["PoseLineage", "SyntheticPose", "SyntheticStep", "Workload", "content_hash"]
