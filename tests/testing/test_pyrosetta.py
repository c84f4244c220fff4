"""The check on real PyRosetta protocols (PackedPose in, PackedPose out), where PyRosetta
is installed; skipped elsewhere, never faked."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyrosetta")

import pyrosetta.distributed.io as io

from chaos.testing import check_preemption_safety

pytestmark = pytest.mark.pyrosetta
TASKS = [{"task_id": i, "seed": i} for i in range(3)]


def score_seeded(packed_pose: Any, *, seed: int, **kwargs: Any) -> Any:
    """Seeded from the task's kwargs: a restart anywhere gives the same PackedPose."""
    return packed_pose.update_scores(draw=random.Random(seed).random())


def score_unseeded(packed_pose: Any, **kwargs: Any) -> Any:
    return packed_pose.update_scores(draw=random.random())


def dump_decoy(packed_pose: Any, **kwargs: Any) -> Any:
    packed_pose.pose.dump_pdb("decoy.pdb")
    return packed_pose


def same_pose(a: Any, b: Any) -> bool:
    return a.pose.sequence() == b.pose.sequence() and a.scores == b.scores


@pytest.fixture
def start_pose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    return io.pose_from_sequence("ACDEFGHIKLMNPQRSTVWY")


def test_a_seeded_packed_pose_chain_is_safe(chaos_client: Any, start_pose: Any) -> None:
    report = check_preemption_safety([score_seeded, score_seeded], TASKS, start_pose,
                                     client=chaos_client, kills=2, compare=same_pose)
    assert report.safe, report.explain()


def test_unseeded_and_file_writing_packed_pose_protocols_are_caught(chaos_client: Any,
                                                                   start_pose: Any) -> None:
    unseeded = check_preemption_safety([score_unseeded], TASKS, start_pose,
                                       client=chaos_client, kills=0, compare=same_pose)
    assert unseeded.kinds() == {"nondeterministic"}, unseeded.explain()
    dumps = check_preemption_safety([score_seeded, dump_decoy], TASKS, start_pose,
                                    client=chaos_client, kills=0, compare=same_pose)
    assert dumps.kinds() == {"side-effect"}, dumps.explain()
    assert "[side-effect] protocol dump_decoy, step 1" in dumps.explain()
