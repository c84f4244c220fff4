"""RetireWorker policy left in the AMM adopts a new worker at the same address.

`Scheduler.retire_workers` adds a `RetireWorker(address)` policy to the Active Memory
Manager. The policy leaves the AMM only on an AMM pass that finds no worker at that
address (or finds nothing unique to move). The retirement itself ends as soon as
`policy.done()` is true, without such a pass. If a new worker then joins at the same
address (fixed --worker-port, an autoscaler's replacement) before such a pass, the left-over
policy treats the new worker as retiring: at the next AMM pass it drops every replica the
new worker holds that has a copy elsewhere.

To make the outcome deterministic the AMM interval is 1 h and the script runs the AMM
passes by hand. ReduceReplicas is switched off (policies: []) so the left-over
RetireWorker is the only policy that can drop anything.

Run: python docs/upstream/retire_worker_adopts_new_worker.py
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time

import dask
import distributed
from distributed import Client, Scheduler, Worker
from distributed.active_memory_manager import RetireWorker

HARD_LIMIT = 80  # seconds, for the whole script


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def holders(scheduler: Scheduler, key: str) -> list[str]:
    return sorted(ws.address for ws in scheduler.tasks[key].who_has or ())


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout} s")
        await asyncio.sleep(0.02)


async def main() -> str:
    port = free_port()
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0") as scheduler, \
            Worker(scheduler.address, nthreads=1, host="127.0.0.1") as other, \
            Client(scheduler.address, asynchronous=True) as client:
        amm = scheduler.extensions["amm"]
        leaving = await Worker(scheduler.address, nthreads=1, host="127.0.0.1", port=port)
        address = leaving.address
        print("worker to retire:", address, "| other worker:", other.address)

        # Data only the leaving worker holds: the policy's first pass then has something
        # to move, so it stays in the AMM after that pass.
        await client.scatter({"unique": b"u" * 1000}, workers=[address], hash=False)
        await scheduler.retire_workers(workers=[address], close_workers=True)
        await asyncio.wait_for(leaving.finished(), 20)
        print("retired; AMM policies now:", list(amm.policies))

        async with Worker(scheduler.address, nthreads=1, host="127.0.0.1",
                          port=port) as new:
            print("new worker joined at the same address:", new.address == address)
            await client.scatter({"shared": b"s" * 1000}, broadcast=True, hash=False)
            await until(lambda: len(holders(scheduler, "shared")) == 2, "2 copies")
            stale = [p for p in amm.policies
                     if isinstance(p, RetireWorker) and p.address == address]
            print("before AMM pass: 'shared' held by", holders(scheduler, "shared"))
            print("stale RetireWorker policies for that address:", stale)

            amm.run_once()
            after = holders(scheduler, "shared")
            print("after one AMM pass: 'shared' held by", after)
            try:
                await until(lambda: "shared" not in new.data, "drop on the new worker", 5)
                print("the new worker's own data no longer has 'shared'")
            except TimeoutError:
                print("the new worker still has 'shared' in its data")

            if stale and address not in after:
                return ("BUG PRESENT: a RetireWorker policy left over from the old worker "
                        f"at {address} dropped the new worker's replica of 'shared'")
            if not stale:
                return "NOT REPRODUCED: no RetireWorker policy was left in the AMM"
            return "NOT REPRODUCED: the new worker kept its replica"


def on_alarm(signum, frame):
    raise TimeoutError(f"script exceeded {HARD_LIMIT} s")


if __name__ == "__main__":
    print("distributed", distributed.__version__)
    logging.getLogger("distributed").setLevel(logging.WARNING)
    logging.getLogger("distributed.active_memory_manager").setLevel(logging.INFO)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(HARD_LIMIT)
    started = time.monotonic()
    try:
        with dask.config.set({
            "distributed.scheduler.active-memory-manager.interval": "1h",
            "distributed.scheduler.active-memory-manager.policies": [],
        }):
            verdict = asyncio.run(asyncio.wait_for(main(), HARD_LIMIT - 10))
    except Exception as error:
        verdict = f"NOT REPRODUCED: the script failed: {error!r}"
    finally:
        signal.alarm(0)
    print(f"({time.monotonic() - started:.1f} s)")
    print(verdict)
    sys.exit(0)
