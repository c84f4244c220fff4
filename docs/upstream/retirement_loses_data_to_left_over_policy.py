"""A graceful retirement loses data when a RetireWorker policy left over from an earlier
retirement names the data's other holder (the consequence of
retire_worker_adopts_new_worker.py).

A worker X joins at the address of a worker retired before (fixed --worker-port, an
autoscaler's replacement) and is adopted by the left-over RetireWorker policy. A key is
held by X and by a worker A, and a task that needs it runs on A. Retiring A: the
retirement's own AMM pass runs the left-over policy, which drops X's copy, and A's
RetireWorker, which sees X still holding the key (the drop is applied at the end of the
pass) and so has nothing to move. The scheduler removes A with the only copy left.

The AMM interval is 1 h, so the retirement's own pass is the only one. ReduceReplicas is
switched off (policies: []).

Run: python docs/upstream/retirement_loses_data_to_left_over_policy.py
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

HARD_LIMIT = 80  # seconds, for the whole script


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def slow_len(value: bytes) -> int:
    time.sleep(1.0)
    return len(value)


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout} s")
        await asyncio.sleep(0.02)


async def main() -> str:
    port = free_port()
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0") as scheduler, \
            Worker(scheduler.address, nthreads=1, host="127.0.0.1") as a, \
            Worker(scheduler.address, nthreads=1, host="127.0.0.1"), \
            Client(scheduler.address, asynchronous=True) as client:
        amm = scheduler.extensions["amm"]
        first = await Worker(scheduler.address, nthreads=1, host="127.0.0.1", port=port)
        await client.scatter({"unique": b"u" * 1000}, workers=[first.address], hash=False)
        await scheduler.retire_workers(workers=[first.address], close_workers=True)
        await asyncio.wait_for(first.finished(), 20)
        async with Worker(scheduler.address, nthreads=1, host="127.0.0.1", port=port) as x:
            print("left over:", list(amm.policies), "| X joined there:", x.address == first.address)
            placed = await client.scatter({"input": b"i" * 1000}, workers=[a.address, x.address],
                                          broadcast=True, hash=False)
            print("'input' held by:", sorted(ws.address for ws in scheduler.tasks["input"].who_has))
            task = client.submit(slow_len, placed["input"], workers=[a.address],
                                 allow_other_workers=True, pure=False)
            await until(lambda: task.key in a.state.tasks
                        and a.state.tasks[task.key].state == "executing", "task on A")
            print("retiring A", a.address, "while the task that needs 'input' runs there")
            await scheduler.retire_workers(workers=[a.address], close_workers=True)
            try:
                result = await asyncio.wait_for(task, 20)
            except Exception as error:  # the input lost: the task is cancelled
                print("the task ended with", repr(error))
                return ("BUG PRESENT: retiring one worker lost 'input', which a second "
                        "worker (adopted by a left-over RetireWorker policy) also held")
            print("the task returned", result)
            return "NOT REPRODUCED: the task completed; 'input' survived the retirement"


def on_alarm(signum, frame):
    raise TimeoutError(f"script exceeded {HARD_LIMIT} s")


if __name__ == "__main__":
    print("distributed", distributed.__version__)
    logging.getLogger("distributed").setLevel(logging.ERROR)
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
