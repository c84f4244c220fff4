"""Every fault kind lands on a real LocalCluster, on the worker running the probed task,
and the history records when it fired, landed and was noticed."""

from __future__ import annotations

import pytest

from chaos import FAULT_KINDS, AtStep, Fault, FaultSchedule, run_schedule
from chaos.spec import ABRUPT_KINDS, SCHEDULER_KINDS
from tests.chaos.kit import invoke_of, one_fault, outcomes_of, removals_of


def run_one(cluster, workload, kind, *, local_signals):
    fault = Fault(kind, AtStep(step=0, fraction=0.5, task="t1"),
                  freeze_for=0.3 if kind == "freeze" else None)
    previous = cluster.local_signals
    cluster.local_signals = local_signals
    try:
        return run_schedule(FaultSchedule((fault,)), "dask-raw", None, workload, cluster,
                            timeout=30)
    finally:
        cluster.local_signals = previous


# The scheduler kinds need a backend that owns its scheduler: tests/deploy covers them.
WORKER_KINDS = [kind for kind in FAULT_KINDS if kind not in SCHEDULER_KINDS]


@pytest.mark.parametrize(
    ("kind", "local_signals"),
    [*((kind, True) for kind in WORKER_KINDS), ("sigkill", False), ("freeze", False)],
)
def test_the_fault_lands_on_the_probed_tasks_worker_and_is_recorded(
    harness, workload, kind, local_signals
):
    record = run_one(harness, workload, kind, local_signals=local_signals)
    assert record.status != "crashed", record.error

    fault = one_fault(record)
    assert not record.events("fault-skipped")  # fired, so never also skipped at the end
    execution = fault["trigger"]["execution"]
    invoke = invoke_of(record, execution)
    assert (fault["kind"], fault["trigger"]["task_id"]) == (kind, "t1")
    assert fault["worker"] == invoke["worker"]
    assert fault["error"] is None
    assert fault["landed_at"] is not None and fault["landed_at"] >= fault["fired_at"]
    if kind in ("sigkill", "freeze"):
        assert fault["mechanism"] == ("local" if local_signals else "nanny")

    removed = removals_of(record, fault["worker"])
    if kind == "freeze":
        # A short freeze goes unnoticed by the scheduler (worker-ttl is minutes).
        assert fault["noticed_at"] is None and not removed
        [ended] = record.events("fault-ended")
        assert (ended["fault_id"], ended["how"]) == ("f0", "sigcont")
        assert outcomes_of(record, execution) == ["ok"]  # the held task resumed
    else:
        assert len(removed) == 1 and fault["noticed_at"] == removed[0]["time"]
        assert removed[0]["expected"] is (kind == "retire")
    if kind in ABRUPT_KINDS:
        # Killed while held at the probe: its outcome is unknown, never "ok".
        assert outcomes_of(record, execution) == ["info"]


def test_a_fault_through_a_nanny_reaches_the_worker_it_has_just_restarted(harness):
    # Nightly seed 5353, s006 (five configurations): a segfault aimed at a worker its
    # nanny had just restarted. Until the restart completes, the nanny's
    # `worker_address` still names the dead predecessor: the harness's call through the
    # nanny asked the dead address (5 s), watched the live process not die (5 s more),
    # and the coordinator waited 10 s with every held probe of the run. The nanny now
    # asks the worker the scheduler named.
    import os
    import signal
    import time

    from chaos.harness import Inflictor

    harness.settle()
    before = {victim.pid for victim in harness.refresh().workers.values()}
    os.kill(next(iter(before)), signal.SIGKILL)  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    # A new process, perhaps at the old address (the local backend's fixed ports).
    while not (restarted := [v for v in harness.refresh().workers.values()
                             if v.pid is not None and v.pid not in before]):
        assert time.monotonic() < deadline, "the nanny did not restart its worker"
        time.sleep(0.002)
    victim = restarted[0]

    landing = Inflictor(harness.client, local_signals=False).inflict("segfault", victim)

    assert landing.error is None, landing.error
    assert landing.landed_at - landing.fired_at < 2.0
