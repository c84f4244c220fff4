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


def _set_status(status: str, dask_worker=None) -> None:
    from distributed.core import Status

    dask_worker.status = Status[status]


def _statuses(dask_scheduler=None) -> dict[str, str]:
    return {address: ws.status.name for address, ws in dask_scheduler.workers.items()}


@pytest.mark.parametrize("comes_back", [False, True], ids=["none-comes", "one-comes-back"])
def test_a_retirement_dask_gives_up_for_want_of_a_recipient_is_asked_again(harness, comes_back):
    """Dask's retirement gives up when no other worker can take the victim's unique
    data (every other one is leaving): `retire_workers` returns without the victim,
    which goes back to running. The harness counted that as landed, and a run with such
    a retirement as one that suffered it. It now asks again, as an autoscaler does:
    the retirement lands once a worker can take the data, and otherwise, at its bound,
    the fault did not land."""
    import threading
    import time

    from chaos.harness import Inflictor

    harness.settle()
    victim, *others = sorted(harness.refresh().workers.values(), key=lambda v: v.address)
    [future] = harness.client.scatter([b"only here"], workers=[victim.address])
    harness.client.run(_set_status, "closing_gracefully", workers=[o.address for o in others])
    back = threading.Timer(0.3, lambda: harness.client.run(_set_status, "running",
                                                           workers=[others[0].address]))
    try:
        deadline = time.monotonic() + 5
        while {harness.client.run_on_scheduler(_statuses)[o.address] for o in others} != {
                "closing_gracefully"}:
            assert time.monotonic() < deadline, "the scheduler never saw the others leaving"
            time.sleep(0.01)
        if comes_back:
            back.start()
        asked = time.monotonic()
        landing = Inflictor(harness.client, land_timeout=2.0 if comes_back else 0.5).inflict(
            "retire", victim)
        waited = time.monotonic() - asked
    finally:
        back.cancel()
        if back.is_alive():
            back.join(2)
        harness.client.run(_set_status, "running", workers=[o.address for o in others])
    if comes_back:
        assert landing.error is None and 0.3 <= waited < 2.0, (landing, waited)
        assert harness.client.who_has(future)[future.key] == (others[0].address,)  # moved
    else:
        assert waited >= 0.5 and landing.landed_at is None
        assert landing.error is not None and "no other worker" in landing.error, landing.error
        assert harness.client.who_has(future)[future.key] == (victim.address,)  # not retired
    future.release()
    harness.settle(timeout=30)
