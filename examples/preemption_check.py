"""The README's PyRosetta-style example, run without PyRosetta: are these protocols safe
to restart after a worker is preempted?

    python examples/preemption_check.py

The two protocols are the README's, with a text "pose" in place of a PackedPose (PyRosetta
is not installable everywhere; tests/testing/test_pyrosetta.py runs the real ones where it
is). `score_seeded` draws from a generator seeded by the task's kwargs: safe.
`dump_decoy` also writes decoy.pdb into the working directory: every task overwrites the
same file, and a restarted task writes it again. The check prints what it found.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster

from chaos.testing import assert_preemption_safe, check_preemption_safety


def score_seeded(pose: str, *, seed: int, **kwargs: Any) -> str:
    rng = random.Random(seed)  # seeded from the task's kwargs: the same draw on any worker
    time.sleep(0.05)  # the work
    return f"{pose}|draw={rng.random():.6f}"


def dump_decoy(pose: str, **kwargs: Any) -> str:
    Path("decoy.pdb").write_text(f"REMARK {pose}\nEND\n")  # a fixed path in the working dir
    return pose


def main() -> None:
    os.chdir(tempfile.mkdtemp(prefix="preemption-example-"))
    tasks = [{"task_id": i, "seed": i} for i in range(3)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        print(check_preemption_safety([score_seeded], tasks, "ACDEFGHIKL", client=client,
                                      seed=5).explain())
        print()
        try:
            assert_preemption_safe([score_seeded, dump_decoy], tasks, "ACDEFGHIKL",
                                   client=client, seed=5)
        except AssertionError as error:
            print(error)


if __name__ == "__main__":
    main()
