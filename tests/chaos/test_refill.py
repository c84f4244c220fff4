"""The harness refills the fleet as an autoscaler would (issue 11's hung runs).

Two retires and a sigterm once removed all 3 workers of the LocalCluster, nothing
replaced them, and the library waited for workers until the run's time bound. With
the refill, a worker that left for good is replaced after `RefillPolicy.delay`, the
replacement is in the history, and the same schedule completes and is valid.
"""

from __future__ import annotations

import pytest

from chaos import Workload, check_history, plan_campaign, run_schedule
from chaos.campaign.regressions import THREE_GRACEFUL_REMOVALS
from chaos.errors import ChaosError
from chaos.harness import RefillPolicy
from chaos.harness.scheduler_calls import start_run_order_afresh
from tests.resilience.kit import only_the_left_over_retirement_goes

# The default workload shape the schedule was found with (8 tasks x 2 steps).
WORKLOAD = Workload(seed=777)


def test_the_schedule_that_emptied_the_cluster_now_completes(harness, tmp_path):
    record = run_schedule(THREE_GRACEFUL_REMOVALS, "resilience", {"task_registry": "memory"},
                          WORKLOAD, harness, out=tmp_path, timeout=30,
                          refill=RefillPolicy(0.5))

    assert record.status == "completed", record.error
    assert check_history(record.history, WORKLOAD.oracle()).valid
    assert len(record.events("fault")) == 3
    # When the removals took every worker the run started with before its last output
    # was delivered, only the refill can have let it finish. (Two faults may land on one
    # worker, the rest may finish the work before the refill's delay, or a retirement
    # Dask gave up, asked again, may land only once the work is done: then the cluster
    # never emptied while it mattered.)
    started_with = {w["address"] for w in record.history[0]["workers"]}
    last_delivery = max(e["time"] for e in record.events("deliver"))
    removed = {e["worker"] for e in record.events("worker-removed") if e["time"] < last_delivery}
    refilled = sum(e["started"] for e in record.events("worker-refill"))
    assert refilled >= 1 or not started_with <= removed, (started_with, removed)
    assert record.history[0]["refill_delay"] == 0.5


def test_a_run_after_a_retirement_does_not_start_with_dask_still_retiring_the_refill(harness):
    # Dask's retirement names its worker by address; the refill comes back there. The
    # main AMM's own passes are put off meanwhile (not stopped: retire_workers would use
    # an AMM of its own): one that found no worker at that address would take the
    # policy out by chance, and the test could not fail.
    client = harness.client
    harness.settle()  # a run before may have retired its last worker as it ended
    client.run_on_scheduler(_main_amm_every, 3600.0)
    try:
        retired = sorted(harness.refresh().workers)[0]
        # Data only it holds keeps Dask's policy past its first pass.
        unique = client.scatter({"only-here": b"x" * 1000}, workers=[retired], hash=False)
        client.retire_workers([retired], close_workers=True)
        del unique
        snapshot = harness.settle()
        assert retired in snapshot.workers  # the refill is back at the retired address
        assert not [p for p in client.run_on_scheduler(_main_amm_every, None)
                    if "RetireWorker" in p], "a run would start with a retirement left over"
    finally:
        client.run_on_scheduler(_main_amm_every, 0.0)


def test_a_retirement_under_way_as_a_run_starts_is_left_to_finish():
    only_the_left_over_retirement_goes(
        lambda scheduler: start_run_order_afresh(dask_scheduler=scheduler))


def _main_amm_every(seconds: float | None, dask_scheduler=None) -> list[str]:
    """The main AMM's policies; its passes put off to every `seconds` (0: its own
    interval again; None: unchanged)."""
    amm = dask_scheduler.extensions["amm"]
    if seconds is not None:
        periodic = dask_scheduler.periodic_callbacks[f"amm-{id(amm)}"]
        periodic.stop()
        periodic.callback_time = 1000 * (seconds or amm.interval)
        periodic.start()
    return [repr(policy) for policy in amm.policies]


def test_the_ci_profile_always_runs_the_regression_schedule():
    plan = plan_campaign("ci", targets=("resilience",))
    assert plan.schedules[0] == THREE_GRACEFUL_REMOVALS
    assert len(plan.schedules) == 3 + 18 + 4  # regression, coverage, then drawn ones
    assert "replaced after 1 s" in plan.describe()


@pytest.mark.parametrize("delay", [-1, float("nan"), "1"])
def test_a_bad_refill_delay_is_refused_with_the_rule(delay):
    with pytest.raises(ChaosError, match="refill delay"):
        RefillPolicy(delay)


class Backend:
    """A backend that records the refills asked of it (no cluster: the policy alone)."""

    def __init__(self, started: int = 1, error: Exception | None = None) -> None:
        self.calls = 0
        self.started = started
        self.error = error

    def replace_departed(self) -> int:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.started


def wait_for(condition, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_departure_is_refilled_after_the_delay_and_recorded():
    from chaos.harness import FleetRefill
    from chaos.history import HistoryWriter

    history, backend = HistoryWriter(), Backend(started=1)
    refill = FleetRefill(RefillPolicy(0.05), backend, history)
    refill.worker_left("tcp://w1")
    wait_for(lambda: backend.calls == 1)
    [event] = [e for e in history.events if e["type"] == "worker-refill"]
    assert (event["left"], event["started"], event["delay"]) == ("tcp://w1", 1, 0.05)
    refill.close()


def test_no_refill_when_the_policy_says_never_or_the_run_is_over():
    from chaos.harness import FleetRefill
    from chaos.history import HistoryWriter

    backend = Backend()
    FleetRefill(RefillPolicy(None), backend, HistoryWriter()).worker_left("tcp://w1")
    closed = FleetRefill(RefillPolicy(0.05), backend, HistoryWriter())
    closed.worker_left("tcp://w2")
    closed.close()
    import time

    time.sleep(0.2)
    assert backend.calls == 0


def test_a_failed_refill_is_a_harness_error_in_the_history():
    from chaos.harness import FleetRefill
    from chaos.history import HistoryWriter

    history, backend = HistoryWriter(), Backend(error=RuntimeError("no capacity"))
    refill = FleetRefill(RefillPolicy(0.0), backend, history)
    refill.worker_left("tcp://w1")
    wait_for(lambda: any(e["type"] == "harness-error" for e in history.events))
    [error] = [e for e in history.events if e["type"] == "harness-error"]
    assert error["during"] == "refill" and "no capacity" in error["error"]
    refill.close()
