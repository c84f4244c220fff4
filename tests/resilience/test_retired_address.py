"""A worker started again at the address of a worker Dask retired keeps the copies the
guard made there.

Dask's RetireWorker policy names its worker by address, and leaves the AMM only on a
pass that finds no worker there. A worker that comes back at that address in between (an
autoscaler's replacement, a fixed --worker-port, the chaos harness's refill) is adopted
by it: it drops every copy that worker holds wherever another exists, pass after pass.
Nightly seed 777 lost inputs kept in 2 copies to a single fault this way (the other
copy was on the adopted worker), and the library reported their tasks failed. Nightly
seed 7070 did again where the worker had come back between two runs, before the second
run's guard listened for joins: the guard now also looks as a run starts protecting.
"""

from __future__ import annotations

import asyncio
import socket

import dask
import pytest
from distributed import Client, Scheduler, Worker
from distributed.active_memory_manager import RetireWorker

from resilience.amm_policy import forget_retirement, protect, top_up, unprotect
from tests.resilience.kit import only_the_left_over_retirement_goes

PREFIX = "rs-in-reused-"


def a_free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("guarded", ["before the retirement", "after the worker is back"])
def test_a_worker_back_at_a_retired_workers_address_keeps_the_copies_the_guard_made(guarded):
    # The main AMM's periodic pass would end the stale policy by chance (its interval
    # is 2 s): passes here are the test's own, so the outcome is not a race.
    # "after": the worker came back between two runs, while no guard listened for joins
    # (nightly seed 7070's loss).
    with dask.config.set({"distributed.scheduler.active-memory-manager.interval": "1h"}):
        asyncio.run(asyncio.wait_for(
            _retire_then_reuse_the_address(guard_first=guarded.startswith("before")),
            timeout=60))


async def _retire_then_reuse_the_address(guard_first: bool) -> None:
    port = a_free_port()
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address=":0") as scheduler, \
            Worker(scheduler.address, nthreads=1, host="127.0.0.1") as other, \
            Client(scheduler.address, asynchronous=True) as client:
        leaving = await Worker(scheduler.address, nthreads=1, host="127.0.0.1", port=port)
        address = leaving.address
        # Data only it holds: Dask then keeps its RetireWorker policy past its first pass.
        await client.scatter({"unique": b"u" * 1000}, workers=[address], hash=False)
        if guard_first:
            await client.run_on_scheduler(protect, PREFIX, 2)
        try:
            await scheduler.retire_workers(workers=[address], close_workers=True)
            await leaving.finished()
            async with Worker(scheduler.address, nthreads=1, host="127.0.0.1",
                              port=port) as back:
                assert back.address == address
                if not guard_first:
                    await client.run_on_scheduler(protect, PREFIX, 2)
                placed = await client.scatter({f"{PREFIX}0": b"x" * 1000},
                                              workers=[address], hash=False)
                key = f"{PREFIX}0"
                await client.run_on_scheduler(top_up)
                await _until(lambda: len(scheduler.tasks[key].who_has or ()) == 2,
                             "the guard's second copy")

                # A pass of Dask's main AMM (every 2 s, and at every retire): it must
                # leave both copies. Checked at once, before the guard could re-make one
                # (within 0.5 s): a single fault in that window loses the input, as when
                # the pass is a retire's and the fault is the retire itself.
                scheduler.extensions["amm"].run_once()
                holders = sorted(ws.address for ws in scheduler.tasks[key].who_has or ())
                assert holders == sorted([address, other.address]), (
                    f"{key} is held by {holders} only: Dask's policy left over from "
                    f"retiring the worker once at {address} dropped the copy of the "
                    "worker back there")
                assert key in back.data
                del placed
        finally:
            await client.run_on_scheduler(unprotect, PREFIX)


def test_a_worker_joining_leaves_the_retirement_of_a_worker_elsewhere_alone():
    # Taken out of the AMM, a retirement under way would end at once, its worker closed
    # with its unique data: only the one naming the joining worker's address may go.
    asyncio.run(asyncio.wait_for(_retirements_here_and_elsewhere(), timeout=30))


async def _retirements_here_and_elsewhere() -> None:
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address=":0") as scheduler:
        amm = scheduler.extensions["amm"]
        # Retirements under way at addresses sorting before and after the joining one's.
        under_way = [RetireWorker("tcp://127.0.0.1:1"), RetireWorker("tcp://127.0.0.1:3")]
        left_over = RetireWorker("tcp://127.0.0.1:2")
        for policy in (*under_way, left_over):
            amm.add_policy(policy)
        forget_retirement(scheduler, "tcp://127.0.0.1:2")
        assert all(policy in amm.policies for policy in under_way)
        assert left_over not in amm.policies


def test_a_run_starting_takes_out_only_the_retirements_of_workers_not_retiring():
    def start_a_run(scheduler):
        protect(PREFIX, 2, dask_scheduler=scheduler)
        unprotect(PREFIX, dask_scheduler=scheduler)

    only_the_left_over_retirement_goes(start_a_run)


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"no {what} after {timeout} s"
        await asyncio.sleep(0.02)
