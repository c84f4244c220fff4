"""The synthetic workload: pose-like payloads, fan-out, and an oracle known without Dask."""

from __future__ import annotations

import pytest

from chaos import SyntheticPose, Workload, WorkloadError
from chaos.workload.synthetic import derive


def run_chain_locally(workload: Workload) -> dict:
    """Call the protocols in-process, as a fault-free cluster would, outside any probe."""
    delivered = {}
    protocols = workload.protocols()
    for task in workload.tasks():
        layer = [workload.initial_input()]
        for protocol in protocols:
            layer = [child for parent in layer for child in protocol(parent, **task)]
        for pose in layer:
            delivered[(pose.task_id, pose.index)] = workload.digest(pose)
    return delivered


def test_the_oracle_is_what_the_protocols_compute():
    workload = Workload(n_tasks=3, n_steps=3, fanout=(2, 1, 3), payload_bytes=2_000,
                        step_seconds=0.0, seed=4)
    assert run_chain_locally(workload) == workload.oracle()
    assert len(workload.oracle()) == workload.expected_outputs() == 3 * 2 * 1 * 3


def test_outputs_carry_their_lineage_and_size():
    workload = Workload(n_tasks=2, n_steps=2, fanout=2, payload_bytes=150_000, step_seconds=0.0)
    [first, second] = derive(workload, workload.initial_input(), "t1", 0)
    assert (first.task_id, first.index, second.index) == ("t1", (0,), (1,))
    assert len(first.pose_bytes) == 150_000
    children = derive(workload, second, "t1", 1)
    assert [child.index for child in children] == [(1, 0), (1, 1)]


def test_every_output_depends_on_seed_task_and_lineage():
    oracle = Workload(n_tasks=2, fanout=2, step_seconds=0.0, seed=1).oracle()
    assert len(set(oracle.values())) == len(oracle)
    assert oracle == Workload(n_tasks=2, fanout=2, step_seconds=0.0, seed=1).oracle()
    other = Workload(n_tasks=2, fanout=2, step_seconds=0.0, seed=2).oracle()
    assert set(oracle) == set(other) and not set(oracle.values()) & set(other.values())


def test_a_swapped_or_altered_output_has_another_digest():
    workload = Workload(payload_bytes=1_000, step_seconds=0.0)
    [pose] = derive(workload, workload.initial_input(), "t0", 0)
    swapped = SyntheticPose("t1", pose.index, pose.pose_bytes)
    altered = SyntheticPose("t0", pose.index, b"x" + pose.pose_bytes[1:])
    assert len({workload.digest(pose), workload.digest(swapped), workload.digest(altered)}) == 3
    assert workload.digest("not a pose").startswith("not-a-synthetic-pose")


def test_a_workload_round_trips_through_its_dict():
    workload = Workload(n_tasks=5, n_steps=3, fanout=(1, 2, 1), busy="cpu", seed=9)
    assert Workload.from_dict(workload.to_dict()) == workload


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"n_tasks": 0}, "n_tasks=0"),
        ({"n_steps": 2, "fanout": (1,)}, "fanout=(1,)"),
        ({"fanout": 0}, "fanout=(0, 0)"),
        ({"payload_bytes": -1}, "payload_bytes=-1"),
        ({"busy": "spin"}, "busy='spin'"),
    ],
)
def test_bad_workload_settings_are_refused_by_name(fields, names):
    with pytest.raises(WorkloadError) as caught:
        Workload(**fields)
    assert names in str(caught.value)
