"""Replicas against the Active Memory Manager: refused when they would not survive, kept
(and re-made after a holder dies) by the scheduler-side guard, which leaves no trace."""

from __future__ import annotations

import os
import signal
import time
from types import SimpleNamespace

import pytest
from distributed import Client
from distributed.protocol.serialize import to_serialize

from resilience import ConfigError, ResilienceConfig, ResilientCluster, replication
from resilience.amm_policy import amm_status, protect, unprotect
from resilience.replication import InputPlacement
from tests.resilience.kit import library_keys, two_workers, wait_until, wait_until_released

AMM_INTERVAL = 2.0  # distributed.scheduler.active-memory-manager.interval


def identity(payload, **_):
    return payload


def copies(client, future) -> int:
    return len(client.who_has([future]).get(future.key, ()))


def drop_suggestions(dask_scheduler) -> list:
    """The keys the main AMM's policies would drop a copy of, were it to run now."""
    amm = dask_scheduler.extensions["amm"]
    amm.pending = {}  # what a policy reads during a real pass
    try:
        return [s.ts.key for policy in amm.policies for s in policy.run() if s.op == "drop"]
    finally:
        del amm.pending


def test_the_scheduler_amm_is_on_in_this_cluster(client):
    # The premise of the tests below: the default AMM reduces replicas.
    assert client.run_on_scheduler(amm_status) == {"running": True,
                                                   "policies": ["ReduceReplicas"]}


@pytest.mark.parametrize("replicas", [2, None])
def test_replicas_are_refused_when_reduce_replicas_would_undo_them(client, replicas):
    rc = ResilientCluster(client, [{}], max_task_replicas=replicas,
                          replica_guard="require-amm-off")
    with pytest.raises(ConfigError) as raised:
        rc.distribute(identity)
    message = str(raised.value)
    assert "distributed.scheduler.active-memory-manager.start: false" in message
    assert "replica_guard='policy'" in message


def test_the_guard_keeps_copies_that_the_amm_would_drop_and_remakes_lost_ones(
        client, local_cluster):
    [guarded, unguarded] = client.scatter(
        {"rs-in-test-guarded": b"g" * 1000, "plain-unguarded": b"u" * 1000}, hash=False
    ).values()
    client.run_on_scheduler(protect, "rs-in-test-", 2)
    try:
        client.replicate([guarded, unguarded], n=2)
        time.sleep(AMM_INTERVAL * 1.5)  # at least one ReduceReplicas pass

        assert copies(client, unguarded) == 1  # the AMM works: this is what it does
        assert copies(client, guarded) == 2  # ... but not to what the guard protects
        # Not merely re-made after a drop: the main AMM never suggests dropping it.
        client.replicate([unguarded], n=2)
        suggested = client.run_on_scheduler(drop_suggestions)
        assert unguarded.key in suggested
        assert guarded.key not in suggested

        holder = client.who_has([guarded])[guarded.key][0]
        os.kill(client.run(os.getpid)[holder], signal.SIGKILL)
        wait_until(lambda: copies(client, guarded) == 1, what="the holder's death")
        two_workers(local_cluster, client)
        # A few guard passes: a clean-clone CI run on a loaded host once needed over 3.
        try:
            wait_until(lambda: copies(client, guarded) == 2, timeout=AMM_INTERVAL * 5,
                       what="a new copy on the replacement worker")
        except AssertionError as timed_out:
            # Once in CI the client's (cached) view showed one worker here: say what the
            # scheduler holds now, to tell a lost worker from a guard that did not act.
            raise AssertionError(f"{timed_out}; workers now {sorted(client.nthreads())}, "
                                 f"copies on {client.who_has([guarded])}") from None
    finally:
        client.run_on_scheduler(unprotect, "rs-in-test-")

    status = client.run_on_scheduler(amm_status)
    assert status["policies"] == ["ReduceReplicas"]  # the original policy is back


def test_a_scheduler_without_an_amm_reports_none_running():
    # distributed.scheduler.active-memory-manager can be left out of a scheduler's
    # extensions altogether; then nothing can undo replicas.
    assert amm_status(SimpleNamespace(extensions={})) == {"running": False, "policies": []}


def test_while_the_guard_is_on_the_clients_amm_controls_still_reach_the_main_amm(client):
    # The guard runs an AMM of its own (KeepReplicas); `client.amm.stop()`, as PR #630
    # asks of users, must still stop the scheduler's main one, not the guard's.
    client.run_on_scheduler(protect, "rs-in-test-", 2)
    try:
        assert client.amm.running() is True
        client.amm.stop()
        assert client.run_on_scheduler(amm_status)["running"] is False
    finally:
        client.amm.start()
        client.run_on_scheduler(unprotect, "rs-in-test-")
    assert client.run_on_scheduler(amm_status)["running"] is True


def test_a_client_that_leaves_takes_only_its_own_prefixes_off_the_guard(client,
                                                                       local_cluster):
    # Another client's run on the same scheduler keeps its protection; the guard goes
    # with the last prefix.
    def guarded(dask_scheduler) -> list[str]:
        guard = dask_scheduler.extensions.get("resilience-replicas")
        return [] if guard is None else sorted(guard.protected)

    # Owners whose ids sort before and after any other: only an exact match may go.
    staying = {"rs-in-stays-": client.id, "rs-in-first-": "Client-0", "rs-in-last-": "Client-~"}
    for prefix, owner in staying.items():
        client.run_on_scheduler(protect, prefix, 2, owner)
    try:
        with Client(local_cluster) as leaving:
            leaving.run_on_scheduler(protect, "rs-in-goes-", 2, leaving.id)
            assert client.run_on_scheduler(guarded) == sorted([*staying, "rs-in-goes-"])
        wait_until(lambda: client.run_on_scheduler(guarded) == sorted(staying),
                   timeout=10, what="the leaving client's prefix to go")
    finally:
        for prefix in staying:
            client.run_on_scheduler(unprotect, prefix)
    assert client.run_on_scheduler(amm_status)["policies"] == ["ReduceReplicas"]


def test_a_run_with_replicas_leaves_the_amm_as_it_found_it(client):
    before = client.run_on_scheduler(library_keys)
    rc = ResilientCluster(client, [{"task_id": i} for i in range(4)], input="in",
                          max_task_replicas=2)
    assert len(rc.distribute(identity).outputs) == 4
    assert client.run_on_scheduler(amm_status) == {"running": True,
                                                   "policies": ["ReduceReplicas"]}
    # Every future was released (the scheduler hears of it a moment later).
    wait_until_released(client, before, timeout=5, what="the run's keys to be released")


def test_with_the_amm_off_replicas_are_accepted_without_the_guard(tmp_path):
    import dask
    from distributed import Client, LocalCluster

    from tests.resilience.kit import Assassin, chain

    with dask.config.set({"distributed.scheduler.active-memory-manager.start": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        assassin = Assassin(client, tmp_path)
        try:
            assassin.arm("t1", step=0)
            tasks = [{"task_id": f"t{i}", "kill_dir": str(tmp_path)} for i in range(3)]
            summary = ResilientCluster(client, tasks, input="in", max_task_replicas=2,
                                       replica_guard="require-amm-off").distribute(chain(1))
        finally:
            assassin.stop()
        assert [k.holders_of_input for k in assassin.kills] == [2]
        assert sorted(o.task_id for o in summary.outputs) == ["t0", "t1", "t2"]
        assert client.run_on_scheduler(amm_status)["running"] is False


def shared_input_holders(dask_scheduler) -> list[int]:
    return [len(ts.who_has) for key, ts in dask_scheduler.tasks.items()
            if str(key).startswith("rs-all-")]


@pytest.mark.parametrize("replicas", [0, 1])
def test_step_0_is_submitted_only_once_every_worker_holds_the_shared_input(client, replicas):
    # With a single holder Dask queues every step 0 on it (a study measured 15 % more
    # makespan without replicas than with, with no preemption at all).
    holders: list[list[int]] = []

    def on_event(event):
        if type(event).__name__ == "StepSubmitted" and not holders:
            holders.append(client.run_on_scheduler(shared_input_holders))

    rc = ResilientCluster(client, [{"task_id": i} for i in range(4)], input="x",
                          max_task_replicas=replicas, on_event=on_event)
    rc.distribute(identity)

    assert holders == [[2]]


def test_the_inputs_of_a_scatter_given_up_are_released_when_the_run_ends(client):
    # A scatter given up on its time bound may still land afterwards: the scheduler then
    # holds the input for this client, and no Future of the client will ever release it.
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory"), "abandon")
    key = placement.key_prefix + "0"
    worker = next(iter(client.nthreads()))
    client.sync(client.scheduler.scatter, data={key: to_serialize(b"x" * 1000)},
                workers=[worker], client=client.id, broadcast=False)

    def known() -> bool:
        return client.run_on_scheduler(lambda dask_scheduler: key in dask_scheduler.tasks)

    assert known()  # landed, wanted by this client, with no Future to release it
    placement._scatter.abandoned.append(key)  # what a scatter given up records
    placement.close()
    wait_until(lambda: not known(), timeout=5, what="the abandoned input to be released")


def test_a_new_scheduler_that_refuses_the_guard_is_logged_and_the_run_goes_on(
        client, monkeypatch):
    # After a lost scheduler the client reconnects, most likely to a new one, and puts
    # the guard on it again; a scheduler that refuses it (no AMM extension, say) costs
    # the replicas their guard, not the run.
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory",
                                                        max_task_replicas=2), "refused")
    placement._protected = [placement.key_prefix, placement.shared_prefix]

    def refuse(prefix, n):
        raise RuntimeError("no active memory manager on this scheduler")

    monkeypatch.setattr(placement, "_protect", refuse)
    warnings: list[str] = []
    # Read from the module's logger itself: whether its records reach the root logger
    # (and pytest's caplog) depends on logging set-ups earlier in the session.
    monkeypatch.setattr(replication.logger, "warning",
                        lambda message, *args: warnings.append(message % args))
    placement.reconnected()
    [warning] = warnings
    assert "the new scheduler has no replica guard" in warning
    assert "no active memory manager" in warning
