"""Placing step inputs: copies exist when `place` returns, a scatter blocked by a frozen
worker goes to the workers that answer, the guard is put back with the same settings on a
new scheduler, and a shared input only frozen workers hold is placed again."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time

import pytest
from distributed import Client

from resilience import ResilienceConfig, bounded_scatter, replication
from resilience.amm_policy import EXTENSION, protect, top_up, unprotect
from resilience.phantom import holders_lacking
from resilience.registry import INITIAL_INPUT
from resilience.replication import InputPlacement
from resilience.submission import StepSubmitter
from resilience.watch import AttemptWatch
from tests.resilience.kit import (
    credit_rightly_again,
    credit_the_wrong_worker,
    logged,
    task_state,
    wait_until,
)


def identity(payload, **_):
    return payload


def holders(client, future) -> set[str]:
    return set(client.who_has([future]).get(future.key, ()))


def guard_settings(dask_scheduler) -> dict:
    guard = dask_scheduler.extensions.get(EXTENSION)
    return {} if guard is None else dict(guard.protected)


def close_once_landed(client, placement: InputPlacement) -> None:
    """Close once the scatters given up have landed on the thawed worker: the scheduler
    holds their inputs for this client then, and close() releases them. (One that lands
    after a run's end stays held until the client disconnects: a known leftover.)"""
    def landed() -> bool:
        known = client.run_on_scheduler(lambda dask_scheduler: set(dask_scheduler.tasks))
        return set(placement._scatter.abandoned) <= known
    with contextlib.suppress(AssertionError):
        wait_until(landed, timeout=5, what="the scatters given up to land")
    placement.close()


def test_place_returns_once_every_input_has_its_copies(client):
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory",
                                                        max_task_replicas=2), "copies")
    placement.start()
    try:
        started = time.monotonic()
        placed = placement.place([b"a" * 1000, b"b" * 1000, b"c" * 1000])
        took = time.monotonic() - started
        assert [len(holders(client, f)) for f in placed] == [2, 2, 2]
        # As soon as they exist: the guard is asked to top up at once (15 ms here), not
        # left to its next round (KEEP_INTERVAL, 0.5 s) nor waited for (REPLICATION_WAIT).
        assert took < 0.25, f"place took {took:.2f} s"
    finally:
        placement.close()


def held_where_credited(client, future) -> bool:
    """Every worker the scheduler says holds `future`'s data does hold it."""
    credited = sorted(holders(client, future))
    held = client.run(lambda dask_worker: future.key in dask_worker.data, workers=credited)
    return bool(credited) and all(held.values())


def test_an_input_credited_to_a_worker_that_lacks_it_is_placed_again_at_once(client):
    # Nightly seeds 777 and 4848: placing waited REPLICATION_WAIT (2 s) with nothing
    # submitted, for copies of an input credited to a worker that did not hold it (a
    # scatter racing its worker's death and return at the same address). No copy can
    # be made from that worker; and the step sent there later hung 57 s.
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory",
                                                        max_task_replicas=2), "credit")
    placement.start()
    client.run_on_scheduler(credit_the_wrong_worker, placement.key_prefix)
    try:
        started = time.monotonic()
        [placed] = placement.place([b"c" * 1000])
        took = time.monotonic() - started
        assert client.run_on_scheduler(credit_rightly_again), "nothing was credited wrongly"
        assert took < 1.0, f"placing took {took:.2f} s"
        assert len(holders(client, placed)) == 2 and held_where_credited(client, placed)
    finally:
        client.run_on_scheduler(credit_rightly_again)
        placement.close()


def test_an_input_whose_only_holder_died_before_its_copies_is_scattered_again(client):
    # The holder of the first input is SIGKILLed between the scatter and the copies: that
    # input is scattered again, under a new key, at once (no copy can be made of it, so
    # there is nothing to wait REPLICATION_WAIT for), and the others keep theirs.
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory",
                                                        max_task_replicas=2), "orphan")
    placement.start()
    copy, killed, copying = placement._replicate, [], []

    def kill_the_first_holder_then_copy(futures, workers):
        if killed:
            return copy(futures, workers)
        [holder] = holders(client, futures[0])
        os.kill(client.run(os.getpid, workers=[holder])[holder], signal.SIGKILL)
        killed.append(key := futures[0].key)
        wait_until(lambda: not replication.holders_of(client, futures[:1])[key], timeout=10,
                   what="the scheduler to see the holder gone")
        started = time.monotonic()
        lost = copy(futures, workers)
        copying.append(time.monotonic() - started)
        return lost

    placement._replicate = kill_the_first_holder_then_copy
    try:
        placed = placement.place([b"a" * 1000, b"b" * 1000])
        assert killed and placed[0].key != killed[0]
        assert copying[0] < replication.REPLICATION_WAIT / 2, f"the copies took {copying[0]:.2f} s"
        assert all(holders(client, f) for f in placed)
        # Its second copy waits for the killed worker's replacement; the guard makes it.
        wait_until(lambda: all(len(holders(client, f)) == 2 for f in placed), timeout=10,
                   what="both inputs' second copies")
    finally:
        placement.close()


def test_copies_made_by_client_replicate_are_waited_for_no_longer_than_the_bound(client):
    # Without the guard, copies are Client.replicate's, which waits for as long as a
    # chosen worker does not answer (dask/distributed #6578): bounded at PLACEMENT_BASE
    # (2 s). The other worker freezes once the input is scattered, before its copy.
    config = ResilienceConfig(task_registry="memory", max_task_replicas=2,
                              replica_guard="require-amm-off")
    placement = InputPlacement(client, config, "bounded")
    pids = client.run(os.getpid)
    copy, frozen = placement._replicate, []

    def freeze_the_other_then_copy(futures, workers):
        [holder] = holders(client, futures[0])
        frozen.extend(pid for address, pid in pids.items() if address != holder)
        os.kill(frozen[0], signal.SIGSTOP)
        started = time.monotonic()
        try:
            return copy(futures, workers)
        finally:
            frozen.append(time.monotonic() - started)

    placement._replicate = freeze_the_other_then_copy
    client.amm.stop()  # what require-amm-off asks of the cluster
    try:
        placement.start()
        [placed] = placement.place([b"b" * 100])
        assert len(holders(client, placed)) == 1  # the copy is not there, yet
        # 2 s, and a slack; and not less: a healthy copy slower than 1 s is still waited for
        assert 2.0 <= frozen[1] < 2.6, f"the copies took {frozen[1]:.2f} s"
    finally:
        if frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(frozen[0], signal.SIGCONT)
        placement.close()
        client.amm.start()


def test_a_silent_worker_is_known_as_such_only_for_its_window(client):
    # Past AVOID_FOR, a worker that did not answer is a worker like the others again:
    # copy rounds go back to their usual length.
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory"), "window")
    placement._scatter.silent = (time.monotonic() + 5.0, {"tcp://10.0.0.1:1"})
    assert placement._scatter.silence_known()
    placement._scatter.silent = (time.monotonic() - 0.01, {"tcp://10.0.0.1:1"})
    assert not placement._scatter.silence_known()


def test_copies_that_never_come_are_waited_for_within_the_bound_at_the_guards_pace(
        client, monkeypatch):
    # Every worker answers, but nothing makes the copies (the guard has forgotten this
    # run's prefix): placing gives up at REPLICATION_WAIT (2 s), with the one copy there is,
    # and meanwhile asks the guard again once every TOP_UP_EVERY, not at every 5 ms look,
    # and the workers whether they really hold the inputs once (a wrong credit is made
    # at the scatter, so later rounds would only repeat the question).
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory",
                                                        max_task_replicas=2), "never")
    placement.start()
    client.run_on_scheduler(unprotect, placement.key_prefix)
    top_ups: list[float] = []
    asked = replication.ask_scheduler

    def counted(client, function, *args):
        if function is top_up:
            top_ups.append(time.monotonic())
        return asked(client, function, *args)

    monkeypatch.setattr(replication, "ask_scheduler", counted)
    asked_workers: list[dict] = []

    def lacking(client, who_has):
        asked_workers.append(who_has)
        return holders_lacking(client, who_has)

    monkeypatch.setattr(replication, "holders_lacking", lacking)
    placed: list = []
    worker = threading.Thread(target=lambda: placed.extend(placement.place([b"a" * 1000])),
                              daemon=True)
    try:
        started = time.monotonic()
        worker.start()
        worker.join(timeout=10)
        took = time.monotonic() - started
        assert not worker.is_alive(), "placing waited past its bound for copies"
        assert 2.0 <= took < 2.6, f"placing gave up after {took:.2f} s"
        assert [len(holders(client, f)) for f in placed] == [1]
        rounds = replication.REPLICATION_WAIT / replication.TOP_UP_EVERY
        assert 2 <= len(top_ups) <= rounds + 1, f"the guard was asked {len(top_ups)} times"
        assert len(asked_workers) == 1, f"the workers were asked {len(asked_workers)} times"
    finally:
        worker.join(timeout=30)
        placement.close()


def test_the_guard_is_put_back_with_the_same_settings_after_a_reconnection(client):
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory",
                                                        max_task_replicas=2), "again")
    placement.start()
    expected = {placement.key_prefix: 2, placement.shared_prefix: None}
    try:
        assert client.run_on_scheduler(guard_settings) == expected
        for prefix in expected:  # what a new scheduler knows of the guard: nothing
            client.run_on_scheduler(unprotect, prefix)
        assert client.run_on_scheduler(guard_settings) == {}
        placement.reconnected()
        assert client.run_on_scheduler(guard_settings) == expected
    finally:
        placement.close()


def break_the_guard(dask_scheduler) -> None:
    dask_scheduler.stashed_guard = dask_scheduler.extensions[EXTENSION]
    dask_scheduler.extensions[EXTENSION] = object()  # unprotect() raises on it


def mend_the_guard(dask_scheduler) -> None:
    dask_scheduler.extensions[EXTENSION] = dask_scheduler.__dict__.pop("stashed_guard")


def test_a_guard_that_cannot_be_removed_is_logged_and_closing_goes_on(client):
    # close() runs at the end of every run, in its finally: a guard the scheduler cannot
    # remove (the cluster going away, say) is worth a warning, not an error over the run's.
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory",
                                                        max_task_replicas=2), "stuck")
    placement.start()
    client.run_on_scheduler(break_the_guard)
    try:
        with logged("resilience.replication", logging.WARNING) as warnings:
            placement.close()
    finally:
        client.run_on_scheduler(mend_the_guard)
        for prefix in (placement.key_prefix, placement.shared_prefix):
            client.run_on_scheduler(unprotect, prefix)
    assert any("could not remove the replica guard" in message for message in warnings)


def test_the_guard_copies_every_protected_key_past_one_not_in_memory(client):
    running = client.submit(time.sleep, 3, key="rs-in-order-0")  # first, and not in memory
    wait_until(lambda: client.run_on_scheduler(task_state, "rs-in-order-0") == "processing",
               timeout=5, what="the first key to run")
    worker = sorted(client.nthreads())[0]
    [held] = client.scatter({"rs-in-order-1": b"x" * 1000}, workers=[worker],
                            hash=False, broadcast=False).values()
    client.run_on_scheduler(protect, "rs-in-order-", 2)
    try:
        client.run_on_scheduler(top_up)
        wait_until(lambda: len(holders(client, held)) == 2, timeout=2,
                   what="a second copy of the key in memory")
    finally:
        client.run_on_scheduler(unprotect, "rs-in-order-")
        running.cancel()


def test_a_copy_lost_with_no_worker_leaving_is_made_again_within_the_interval(client):
    # No membership change wakes the guard (a copy dropped by its worker, say): its own
    # AMM runs every KEEP_INTERVAL = 0.5 s, so the copy is back well within a second.
    [held] = client.scatter({"rs-in-interval-0": b"x" * 1000}, hash=False).values()
    client.run_on_scheduler(protect, "rs-in-interval-", 2)
    try:
        wait_until(lambda: len(holders(client, held)) == 2, timeout=5, what="two copies")
        dropped = sorted(holders(client, held))[0]
        client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.request_remove_replicas(
            dropped, [held.key], stimulus_id="test-drop"))
        started = time.monotonic()
        wait_until(lambda: len(holders(client, held)) == 2, timeout=3,
                   what="the dropped copy made again")
        assert time.monotonic() - started < 0.9
    finally:
        client.run_on_scheduler(unprotect, "rs-in-interval-")


def test_a_scatter_blocked_by_a_frozen_worker_goes_to_the_workers_that_answer(client):
    # Nightly seed 2718: the run loop waited out a 1 s freeze in a scatter, and the
    # delivery of steps whose worker had died (not frozen) waited with it. A freeze just
    # begun shows in no heartbeat yet: only asking the workers tells.
    frozen, answering = sorted(client.nthreads())
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory"), "frozen")
    pid = client.run(os.getpid, workers=[frozen])[frozen]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        placed = placement.place([b"p" * 100 for _ in range(4)])  # some would go to it
        took = time.monotonic() - started
        assert all(holders(client, f) == {answering} for f in placed)
        # Given up once the frozen worker failed to answer, not at the scatter's bound.
        detected = bounded_scatter.STALL_AFTER + bounded_scatter.PING_TIMEOUT
        assert took < detected + 0.3, f"placing took {took:.2f} s"
        # Within AVOID_FOR, later scatters go to the answering workers straight away.
        started = time.monotonic()
        [later] = placement.place([b"q" * 100])
        assert holders(client, later) == {answering}
        assert time.monotonic() - started < bounded_scatter.STALL_AFTER
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        close_once_landed(client, placement)


def credit_a_departed_worker(prefix: str, dask_scheduler=None) -> None:
    """What Dask's scatter meets when a worker it sent to leaves before the scatter is
    recorded: `update_data` raises KeyError on it, part-way through the keys. Here the
    second key starting with `prefix` is credited to a worker that is not there."""
    real = dask_scheduler.update_data
    seen: list = []

    def update_data(*, who_has, nbytes, client=None):
        for key in who_has:
            if str(key).startswith(prefix):
                seen.append(key)
                if len(seen) == 2:
                    who_has[key] = ["tcp://127.0.0.1:9"]  # a worker gone
        return real(who_has=who_has, nbytes=nbytes, client=client)

    dask_scheduler.credited_wrongly = seen  # what credit_rightly_again returns
    dask_scheduler.real_update_data = real
    dask_scheduler.update_data = update_data


def test_the_keys_a_failed_scatter_left_behind_are_released(client):
    # A test whose workers were killed left 2 inputs on the shared cluster, run after
    # run: the keys Dask's scatter recorded before the worker that left, wanted by no one.
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory"), "orphans")
    client.run_on_scheduler(credit_a_departed_worker, placement.key_prefix)
    try:
        with pytest.raises(KeyError, match=r"tcp://127\.0\.0\.1:9"):
            placement.place([b"o" * 100 for _ in range(3)])
    finally:
        client.run_on_scheduler(credit_rightly_again)
    left = client.run_on_scheduler(lambda dask_scheduler: sorted(
        str(key) for key in dask_scheduler.tasks if str(key).startswith("rs-in-orphans-")))
    assert left == [], f"a failed scatter left {left}"
    placed = placement.place([b"o" * 100])  # the run loop's next try
    assert holders(client, placed[0])
    placement.close()


def test_copies_are_counted_short_once_the_client_has_lost_its_scheduler(local_cluster):
    # A deploy campaign's run died of the CommClosedError this count raised, called
    # right after its scheduler was SIGKILLed: now every input counts as short (the
    # client keeps its payload), at once. (A client closed here: it is not "running".)
    own = Client(local_cluster)
    placement = InputPlacement(own, ResilienceConfig(task_registry=None,
                                                     max_task_replicas=2), "gone")
    try:
        placement.start()
        placed = placement.place([b"g" * 100, b"h" * 100])
        assert placement.lacking_copies(placed) == [False, False]
    finally:
        placement.close()
        own.close()
    started = time.monotonic()
    assert placement.lacking_copies([*placed, b"inline"]) == [True, True, False]
    assert time.monotonic() - started < 1.0


def test_a_worker_that_answered_and_died_since_is_no_target(client):
    # Nightly seed 4711: the workers that answered were kept as the only targets for
    # AVOID_FOR; one was SIGKILLed meanwhile, every scatter naming it failed, and the run
    # loop retried them for 10 s. Only the silent ones are left out, of those there are.
    frozen, doomed = sorted(client.nthreads())
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory"), "died")
    pids = client.run(os.getpid)
    os.kill(pids[frozen], signal.SIGSTOP)
    try:
        placement.place([b"p" * 100 for _ in range(4)])  # stalls: `frozen` is silent
    finally:
        os.kill(pids[frozen], signal.SIGCONT)
    try:
        # Thawed, it is still left out for AVOID_FOR; the one that answered dies.
        wait_until(lambda: set(placement._scatter.abandoned) <= client.run_on_scheduler(
            lambda dask_scheduler: set(dask_scheduler.tasks)), timeout=5,
            what="the scatter given up to land")
        os.kill(pids[doomed], signal.SIGKILL)
        others: set[str] = set()

        def replaced() -> bool:  # one look, so that the replacement named is one seen
            others.clear()
            others.update(set(client.nthreads()) - {frozen, doomed})
            return len(others) == 1

        wait_until(replaced, timeout=10, what="the killed worker's replacement")
        [replacement] = others
        started = time.monotonic()
        [placed] = placement.place([b"r" * 100])
        assert holders(client, placed) == {replacement}
        assert time.monotonic() - started < bounded_scatter.STALL_AFTER
    finally:
        placement.close()


def test_copies_a_frozen_worker_cannot_take_are_left_to_the_guard(client, monkeypatch):
    # Nightly seed 2718 (r2): the copies went to a frozen worker, and the run loop waited
    # for them (and every delivery with it) until the freeze ended. Now it waits one
    # round of TOP_UP_EVERY, made long here so that one round and two differ clearly.
    monkeypatch.setattr(replication, "TOP_UP_EVERY", 0.8)
    frozen, answering = sorted(client.nthreads())
    placement = InputPlacement(client, ResilienceConfig(task_registry="memory",
                                                        max_task_replicas=2), "uncopied")
    placement.start()
    pid = client.run(os.getpid, workers=[frozen])[frozen]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        placed = placement.place([b"c" * 100 for _ in range(2)], workers=[answering])
        took = time.monotonic() - started
        assert all(holders(client, f) == {answering} for f in placed)  # one copy for now
        assert took < 1.5 * replication.TOP_UP_EVERY, f"placing took {took:.2f} s"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    try:  # thawed, the frozen worker gets its copies from the guard
        wait_until(lambda: all(len(holders(client, f)) == 2 for f in placed), timeout=5,
                   what="the guard's copies once the worker thawed")
    finally:
        placement.close()


def test_a_shared_input_only_frozen_workers_hold_is_placed_again(client):
    config = ResilienceConfig(task_registry="memory", step_timeout=5)
    watch = AttemptWatch(client, "suspects", 5)
    submitter = StepSubmitter(client, config, "suspects", [identity], [0], "shared", watch)
    submitter.start()
    try:
        _, [first] = submitter.submit(0, [("suspects-a", INITIAL_INPUT, {})])
        _, [same] = submitter.submit(0, [("suspects-b", INITIAL_INPUT, {})])
        assert same.key == first.key  # held by healthy workers: placed once
        every = holders(client, first)
        assert len(every) >= 2, every  # the guard copies it to every worker
        watch.suspects = {sorted(every)[0]}  # one holder of several stopped answering
        _, [kept] = submitter.submit(0, [("suspects-c", INITIAL_INPUT, {})])
        assert kept.key == first.key
        # Every holder stopped answering (and a worker that holds none of it).
        watch.suspects = every | {"tcp://127.0.0.1:1"}
        _, [again] = submitter.submit(0, [("suspects-d", INITIAL_INPUT, {})])
        assert again.key != first.key
        # Its holders, and no other worker, stopped answering.
        watch.suspects = holders(client, again)
        _, [third] = submitter.submit(0, [("suspects-e", INITIAL_INPUT, {})])
        assert third.key != again.key
    finally:
        submitter.close()
        watch.close()
