"""What the harness has seen of a run, when a worker comes back at its old address.

A worker its nanny restarts keeps its address when its port is fixed (the local
backend's are): the executions of the process that died are over, the new process's
are not, and each departure is noticed by the fault that caused it.
"""

from __future__ import annotations

from chaos.harness.observations import RunObservations

ADDRESS = "tcp://127.0.0.1:20001"


def invoke(seen: RunObservations, execution: str, pid: int, task_id: str = "t0") -> None:
    seen.record("invoke", {"execution": execution, "task_id": task_id, "index": [], "step": 0,
                           "key": f"key-{execution}", "worker": ADDRESS, "pid": pid})


def test_a_restarted_workers_new_execution_runs_and_the_dead_ones_does_not():
    seen = RunObservations()
    invoke(seen, "x1", pid=100)
    seen.record_removal(ADDRESS, when=10.0)  # SIGKILLed; its nanny starts it again
    assert seen.running("t0") is None and seen.busy_workers() == []

    invoke(seen, "x2", pid=200)
    running = seen.running("t0")
    assert running is not None and (running.key, running.pid) == ("key-x2", 200)
    assert seen.busy_workers() == [ADDRESS]

    seen.record_removal(ADDRESS, when=20.0)
    assert seen.running("t0") is None and seen.busy_workers() == []


def test_each_removal_is_the_notice_of_one_fault():
    seen = RunObservations()
    seen.record_removal(ADDRESS, when=10.0)
    seen.record_removal(ADDRESS, when=10.4)  # a second kill, on the restarted process
    assert seen.claim_removal(ADDRESS, since=9.0) == 10.0
    assert seen.claim_removal(ADDRESS, since=9.5) == 10.4
    assert seen.claim_removal(ADDRESS, since=9.5) is None  # both taken
    seen.record_removal(ADDRESS, when=20.0)
    assert seen.claim_removal(ADDRESS, since=25.0) is None  # before the fault fired
    assert seen.claim_removal(ADDRESS, since=15.0) == 20.0
    assert seen.claim_removal("tcp://127.0.0.1:20002", since=0.0) is None
