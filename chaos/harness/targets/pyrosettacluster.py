"""The `pyrosettacluster` target: the real PyRosettaCluster, when PyRosetta is importable.

It runs the synthetic workload through `PyRosettaCluster.generate` with its own
`max_task_replicas` and `task_registry`, so the harness measures PyRosettaCluster
itself, never an imitation. PyRosetta cannot be pip-installed, so this target is
skipped wherever `import pyrosetta` fails (see pyproject's `pyrosetta` extra).

PyRosettaCluster hands protocols PackedPoses, so the synthetic lineage travels in the
pose's scores (`chaos_task_id`, `chaos_index`, `chaos_hash`, `chaos_digest`): each
protocol rebuilds a `PoseLineage`, runs the probed synthetic step on it, and returns
the input pose with the children's scores. The pose itself is the payload.

PyRosettaCluster runs each protocol in a billiard subprocess of the worker, where there
is no Dask worker: the probes there report through a client of the scheduler and name
their worker by its pid (see `chaos.probes.worker`), so the subprocess must reach the
scheduler. Its resubmission from the registry is unbounded, and `KilledWorker` drops a
chain silently; the recorded config says so. This code path needs PyRosetta and is not
exercised where PyRosetta cannot be installed; the subprocess probes it relies on are
(tests/chaos/test_subprocess_probes.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from chaos.errors import ScheduleError
from chaos.harness.targets.base import Target, TargetConfig, TargetRun, cancel_client_futures
from chaos.workload import PoseLineage, Workload, content_hash

# PyRosettaCluster resubmits from its registry without a bound.
UNBOUNDED_ATTEMPTS = 10**9


class PyRosettaClusterTarget(Target):
    name: ClassVar[str] = "pyrosettacluster"

    def __init__(self) -> None:
        self._client: Any = None

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            import pyrosetta  # noqa: F401
            from pyrosetta.distributed.cluster import PyRosettaCluster  # noqa: F401
        except ImportError as error:
            return (f"PyRosetta is not importable ({error}); install it from "
                    "https://www.pyrosetta.org/downloads into this environment")
        return None

    def check(self, config: TargetConfig) -> None:
        super().check(config)
        if not config.scatter:
            raise ScheduleError(
                "scatter=False does not apply to pyrosettacluster: PyRosettaCluster always "
                "scatters each task's input. Drop --inline for this target."
            )

    def recorded_config(self, config: TargetConfig, allowed_failures: int) -> dict[str, Any]:
        recorded = super().recorded_config(config, allowed_failures)
        recorded["max_attempts"] = UNBOUNDED_ATTEMPTS if config.task_registry else 1
        recorded["killed_worker"] = "dropped"
        return recorded

    def run(self, run: TargetRun) -> None:
        import pyrosetta.distributed
        from pyrosetta.distributed.cluster import PyRosettaCluster

        pyrosetta.distributed.init("-mute all")
        self._client = run.client
        workload, config = run.workload, run.config
        cluster = PyRosettaCluster(
            tasks=workload.tasks(),
            input_packed_pose=_start_pose(workload),
            client=run.client,
            max_task_replicas=config.max_task_replicas,
            task_registry=config.task_registry,
            scratch_dir=str(run.scratch),
            output_path=str(run.scratch / "outputs"),
            dry_run=True,
            nstruct=1,
            **dict(config.options),
        )
        protocols = [_as_function(protocol, workload) for protocol in run.protocols]
        for packed_pose, _ in cluster.generate(protocols=protocols, retries=config.retries):
            scores = dict(packed_pose.scores)
            run.history.emit("deliver", task_id=_task_id(scores["chaos_task_id"]),
                             index=json.loads(scores["chaos_index"]),
                             digest=scores["chaos_digest"], attempts=1)

    def abort(self) -> None:
        if self._client is not None:
            cancel_client_futures(self._client)


def _start_pose(workload: Workload) -> Any:
    import pyrosetta.distributed.io as io

    pose = io.pose_from_sequence("ACDEFGHIKLMNPQRSTVWY")
    return pose.update_scores(
        chaos_task_id="", chaos_index="[]",
        chaos_hash=content_hash(workload.initial_input()), chaos_digest="",
    )


def _as_function(protocol: Callable[..., Any], workload: Workload) -> Callable[..., Any]:
    """A plain function (PyRosettaCluster accepts only functions) around a probed step."""

    def chaos_protocol(packed_pose: Any, **kwargs: Any) -> list[Any]:
        return _run_step(protocol, workload, packed_pose, kwargs["task_id"])

    chaos_protocol.__name__ = getattr(protocol, "__name__", "chaos_protocol")
    return chaos_protocol


def _run_step(protocol: Callable[..., Any], workload: Workload, packed_pose: Any,
              task_id: Any) -> list[Any]:
    scores = dict(packed_pose.scores)
    parent = PoseLineage(_task_id(scores.get("chaos_task_id", "")),
                         tuple(json.loads(scores.get("chaos_index", "[]"))), scores["chaos_hash"])
    children = protocol(parent, task_id=task_id)
    return [
        packed_pose.update_scores(
            chaos_task_id=json.dumps(child.task_id), chaos_index=json.dumps(list(child.index)),
            chaos_hash=content_hash(child), chaos_digest=workload.digest(child),
        )
        for child in children
    ]


def _task_id(text: str) -> Any:
    return json.loads(text) if text else None
