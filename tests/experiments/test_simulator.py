"""The simulator places inputs as the library does (resilience.replication), and the
same (spec, costs, seed) gives the same run in any process."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from experiments import SimSpec, simulate
from experiments.durations import Duration
from tests.experiments.test_closed_forms import free_costs


@pytest.mark.parametrize("copies", [0, 1, 2, None])
def test_the_shared_step_0_input_is_on_every_worker_whatever_the_copies(copies):
    # 6 one-second steps 0 on 3 workers, no preemption, no work stealing: they run 3 at
    # a time only if every worker holds the input they share. With its one copy on one
    # worker (the model before it matched the library) they ran one at a time: 6 s.
    spec = SimSpec(workers=3, tasks=6, steps=1, fanout=(1,), payload_bytes=1000,
                   duration=Duration.constant(1.0), duration_seed=0, copies=copies,
                   registry=None, max_attempts=5, scatter=True, sources=(), timeout=100)
    costs = replace(free_costs(), steal_after=1e6)

    outcome = simulate(spec, costs, seed=0)

    assert outcome.status == "completed"
    assert outcome.makespan == pytest.approx(2.0)


# Kills under a registry, so lost inputs are resubmitted in the order the model walks
# them: the order that used to follow the objects' addresses.
ONE_PROCESS = """
import json
from dataclasses import replace
from experiments import SimSpec, simulate
from experiments.durations import Duration
from experiments.sim_spec import PreemptionSource
from tests.experiments.test_closed_forms import free_costs
spec = SimSpec(workers=4, tasks=12, steps=3, fanout=(2, 1, 1), payload_bytes=1000,
               duration=Duration.constant(1.0), duration_seed=0, copies=0,
               registry="memory", max_attempts=5, scatter=True,
               sources=(PreemptionSource("sudden", 0.2, 0.0, 2.0),), timeout=1000)
costs = replace(free_costs(), steal_after=0.3, dispatch=0.01, detection=0.1)
print(json.dumps([simulate(spec, costs, seed).makespan for seed in range(30)]))
"""


def test_the_same_seed_gives_the_same_run_in_another_process():
    runs = [json.loads(subprocess.run([sys.executable, "-c", ONE_PROCESS], check=True,
                                      capture_output=True, text=True, timeout=120).stdout)
            for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
