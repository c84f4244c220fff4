"""What protocols may return, and what happens when they raise."""

from __future__ import annotations

import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster

from resilience import ResilientCluster, TaskFailures


def shapes(payload: Any, *, task_id: str, **_: Any) -> Any:
    if task_id == "none":
        return None
    if task_id == "tuple":
        return (f"{payload}-a", f"{payload}-b")
    if task_id == "generator":
        return (f"{payload}-{i}" for i in range(3))
    return f"{payload}-one"


def test_protocols_return_one_many_a_generator_or_nothing(client):
    tasks = [{"task_id": t} for t in ("one", "tuple", "generator", "none")]
    summary = ResilientCluster(client, tasks, input="x").distribute([shapes])

    got = sorted((o.task_id, o.index, o.value) for o in summary.outputs)
    assert got == [
        ("generator", (0,), "x-0"), ("generator", (1,), "x-1"), ("generator", (2,), "x-2"),
        ("one", (0,), "x-one"),
        ("tuple", (0,), "x-a"), ("tuple", (1,), "x-b"),
    ]
    assert summary.failed == {}  # returning nothing is not a failure


def returns_a_lock(payload: Any, **_: Any) -> Any:
    return [payload, threading.Lock()]  # a lock cannot be pickled


@pytest.mark.timeout(60)  # the run hung here, fetching that output for ever
@pytest.mark.parametrize("chain", [[returns_a_lock], [returns_a_lock, shapes]])
def test_a_protocol_whose_output_cannot_be_pickled_fails_its_task_saying_so(client, chain):
    rc = ResilientCluster(client, [{"task_id": "one"}], input="x", task_registry="memory")
    started = time.monotonic()
    with pytest.raises(TaskFailures) as raised:
        rc.distribute(chain)
    assert time.monotonic() - started < 10
    assert "step 0 (returns_a_lock) raised" in raised.value.failed["one"]
    assert ("an output of the protocol cannot be serialized (cannot pickle '_thread.lock' "
            "object)") in raised.value.failed["one"]


def flaky(payload: Any, *, marker_dir: str, task_id: str, **_: Any) -> Any:
    """Raises on its first run for each task (a transient error), then succeeds."""
    marker = Path(marker_dir, f"ran-{task_id}")
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return f"{payload}-ok"
    raise ValueError(f"transient trouble in {task_id}")


def test_retries_cover_a_transient_protocol_error(client, tmp_path):
    tasks = [{"task_id": f"t{i}", "marker_dir": str(tmp_path)} for i in range(3)]
    summary = ResilientCluster(client, tasks, input="x").distribute([flaky], retries=1)
    assert sorted(o.value for o in summary.outputs) == ["x-ok"] * 3
    assert summary.resubmissions == 0  # Dask retried; the library did not resubmit
    assert summary.attempts == 3  # one submission per step: Dask's retry is not one
    assert summary.previously_delivered == 0  # no registry: no earlier session to count


def test_a_protocol_error_is_reported_with_its_traceback_and_not_resubmitted(client, tmp_path):
    tasks = [{"task_id": "t0", "marker_dir": str(tmp_path)}]
    rc = ResilientCluster(client, tasks, input="x", task_registry="memory")

    with pytest.raises(TaskFailures) as raised:
        rc.distribute([flaky], retries=0)

    reason = raised.value.failed["t0"]
    assert "step 0 (flaky) raised" in reason
    assert "ValueError: transient trouble in t0" in reason
    assert 'line' in reason and "flaky" in reason  # the remote traceback
    assert "retries=" in reason
    assert raised.value.summary.resubmissions == 0  # a registry does not retry bugs


def test_retries_may_differ_per_protocol(client, tmp_path):
    tasks = [{"task_id": "t0", "marker_dir": str(tmp_path)}]

    def first(payload: Any, **_: Any) -> Any:
        return payload

    summary = ResilientCluster(client, tasks, input="x").distribute([first, flaky],
                                                                    retries=[0, 2])
    assert [o.value for o in summary.outputs] == ["x-ok"]


def stamped(payload: Any, *, step: int, **_: Any) -> Any:
    started = time.time()
    time.sleep(0.1)
    return {**payload, f"step{step}": started}


def test_a_chain_runs_depth_first_so_outputs_come_out_while_new_tasks_wait():
    # Dask runs tasks without dependencies in the order given: handed over as tasks of
    # their own, each task's step 1 queued behind the other admitted tasks' step 0s (on
    # one worker, 6 of 12 step 0s ran before the first step 1; with the fleet cut to one
    # worker, that queue made issue 12's slowest recoveries). Later steps go first.
    tasks = [{"task_id": i} for i in range(12)]
    steps = [partial(stamped, step=0), partial(stamped, step=1)]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as one_worker, Client(one_worker) as client:
        summary = ResilientCluster(client, tasks, input={}).distribute(steps)

    assert len(summary.outputs) == 12 and not summary.failed
    first_step1 = min(o.value["step1"] for o in summary.outputs)
    before = sum(o.value["step0"] < first_step1 for o in summary.outputs)
    assert before <= 4, f"{before} step 0s ran before the first step 1"


def decoys(payload, n, **_):
    return [f"{payload}-{i}" for i in range(n)]


def broken(payload, **_):
    raise ValueError(f"cannot refine {payload}")


def test_a_task_whose_branches_all_failed_names_the_first_failure_and_counts_the_others(client):
    tasks = [{"task_id": "fans-out", "n": 2}, {"task_id": "single", "n": 1}]

    with pytest.raises(TaskFailures) as raised:
        ResilientCluster(client, tasks, input="x").distribute([decoys, broken])

    failed = raised.value.failed
    assert failed["fans-out"].endswith("(and 1 more failed step(s))"), failed
    assert "cannot refine x-" in failed["fans-out"]
    assert "more failed step" not in failed["single"] and "cannot refine x-0" in failed["single"]
