"""Probes in a subprocess of a worker (how PyRosettaCluster runs protocols, in billiard):
they report through a client, name their worker by its pid, and hold on a Dask Event;
a kill takes the subprocess with its worker."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, ClassVar

import cloudpickle

from chaos import AtStep, Fault, FaultSchedule, Workload, run_schedule
from chaos.harness import TargetRun, process_state
from chaos.harness.targets.dask_raw import DaskRawTarget
from tests.chaos.kit import delivered, invoke_of, of_execution, one_fault, outcomes_of

CHILD = ("import sys, cloudpickle; f, p, t = cloudpickle.loads(sys.stdin.buffer.read()); "
         "sys.stdout.buffer.write(cloudpickle.dumps(f(p, **t)))")


class InSubprocess:
    """Runs a protocol in a fresh Python process, as PyRosettaCluster does in billiard."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.__name__ = getattr(protocol, "__name__", "in_subprocess")

    def __call__(self, payload: Any, **task: Any) -> Any:
        done = subprocess.run([sys.executable, "-c", CHILD],
                              input=cloudpickle.dumps((self.protocol, payload, task)),
                              capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode(errors="replace")[-2000:])
        return cloudpickle.loads(done.stdout)


class RawDaskInSubprocesses(DaskRawTarget):
    name: ClassVar[str] = "dask-raw-subprocess"

    def run(self, run: TargetRun) -> None:
        run.protocols = [InSubprocess(protocol) for protocol in run.protocols]
        super().run(run)


def test_a_probe_in_a_worker_subprocess_holds_and_the_kill_lands_there(harness):
    workload = Workload(n_tasks=2, n_steps=1, payload_bytes=2_000, step_seconds=0.1, seed=1)
    schedule = FaultSchedule((Fault("sigkill", AtStep(step=0, fraction=0.5, task="t1")),))
    record = run_schedule(schedule, RawDaskInSubprocesses(), None, workload, harness, timeout=90)
    assert record.status == "completed", record.error

    fault = one_fault(record)
    execution = fault["trigger"]["execution"]
    invoke = invoke_of(record, execution)
    assert invoke["worker"] is None and invoke["task_id"] == "t1"
    workers = {w["pid"]: w["address"] for w in record.history[0]["workers"]}
    assert invoke["parent_pid"] in workers  # the subprocess's parent is a Dask worker
    assert (fault["worker"], fault["pid"]) == (workers[invoke["parent_pid"]], invoke["parent_pid"])
    last = [e for e in of_execution(record, execution) if e["type"] == "probe"][-1]
    assert last["fraction"] == 0.5 and last["armed"] == ["f0"] and last["hold"]
    assert outcomes_of(record, execution) == ["info"]
    # The subprocess died with its worker: nothing is left running.
    assert process_state(invoke["pid"]) in (None, "Z")
    assert ("t0", (0,)) in delivered(record)
