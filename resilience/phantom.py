"""Attempts that wait on an input the scheduler says their worker holds, and it does not.

Dask's `Scheduler.scatter` sends the data to a worker, then records who holds it. A
worker that dies in between and comes back at the same address (a nanny's restart on a
fixed port) gets the credit: the scheduler believes the new process holds data that
died with the old one, and sends the step there. That worker knows better and drops
itself from the input's holders (distributed's `WorkerState._update_who_has`), but tells
no one: the step waits for its input for ever, and so would the run. (Found by a
nightly campaign: 3 of 900 runs hung for their full bound; without fixed ports the same
race is Dask's `KeyError` in `update_data`, a failed scatter that is retried.)

The same wait, one step removed: the scheduler credits an input to a worker that does
not hold it, and the step runs on another, which asks that worker for it again and
again (a nightly hung a run for 57 s so, the input's only real copy gone with its
worker). An attempt counts when its own worker lacks an input it is said to hold, or
when every worker said to hold one of its inputs lacks it.

Asked only while the run is idle (the run loop's limbo clock), of the scheduler and
then of each worker concerned, each on its own bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from distributed import Client

from resilience.scheduler_watch import ask_scheduler

logger = logging.getLogger(__name__)

WORKER_ANSWER = 0.5  # seconds for each worker's answer (about 5 ms); a frozen one gives none,
# and the run loop waits this long for it

def claimed_inputs(keys: list[str], dask_scheduler: Any = None) -> dict[str, Any]:
    """On the scheduler: of `keys` processing on a worker, where that worker is and,
    input by input, the workers said to hold it: {key: [worker, {input: [holders]}]}."""
    found: dict[str, Any] = {}
    for key in keys:
        ts = dask_scheduler.tasks.get(key)
        if ts is None or ts.state != "processing" or ts.processing_on is None:
            continue
        found[key] = [ts.processing_on.address,
                      {str(dep.key): [ws.address for ws in dep.who_has or ()]
                       for dep in ts.dependencies}]
    return found


def not_held(keys: list[str], dask_worker: Any = None) -> list[str]:
    """On a worker: those of `keys` it does not hold. (It keeps what the scheduler says
    it holds until told to let go, and is not told while a step needs it.)"""
    return [key for key in keys if key not in dask_worker.data]


def holders_lacking(client: Client, who_has: dict[str, list[str]]) -> dict[str, set[str]]:
    """Of the workers said to hold each key, those that say they do not, by key (only
    keys some holder lacks). A worker gone or frozen says nothing, and counts for
    nothing: that is the scheduler's business, not a phantom."""
    asked: dict[str, list[str]] = {}
    for key, holders in who_has.items():
        for holder in holders:
            asked.setdefault(holder, []).append(key)
    lacked: dict[str, set[str]] = {}
    for address, answer in ask_each_worker(client, not_held, asked, WORKER_ANSWER).items():
        if isinstance(answer, BaseException):
            logger.debug("worker %s did not say which keys it lacks: %r", address, answer)
            continue
        for key in answer:
            lacked.setdefault(key, set()).add(address)
    return lacked


def find_phantom_inputs(client: Client, keys: list[str]) -> list[str]:
    """The attempts among `keys` waiting on an input that is not where the scheduler
    says it is: their own worker is said to hold it and does not, or none of the
    workers said to hold it does (the worker running the step asks them for ever; a
    nightly hung a run for 57 s so). [] when the scheduler cannot say."""
    if not keys:
        return []
    try:
        placed: dict[str, Any] = ask_scheduler(client, claimed_inputs, keys)
    except Exception as error:  # e.g. a scheduler going away
        logger.debug("cannot ask the scheduler where inputs are: %r", error)
        return []
    who_has = {dep: holders for _, holders_of in placed.values()
               for dep, holders in holders_of.items()}
    lacked = holders_lacking(client, who_has) if any(who_has.values()) else {}
    return [key for key, (worker, holders_of) in placed.items()
            if any(worker in lacked.get(dep, ()) or lacked.get(dep) == set(holders)
                   for dep, holders in holders_of.items())]


def ask_each_worker(client: Client, function: Any, args: dict[str, Any],
                    timeout: float) -> dict[str, Any]:
    """`function(args[address])` on each worker `address`, all at once, each answer
    bounded by `timeout` (a frozen worker gives none): its result, or the exception."""

    async def ask(address: str) -> Any:
        try:
            answer = await asyncio.wait_for(
                client._run(function, args[address], workers=[address]), timeout)
            return answer[address]
        except Exception as error:
            return error

    async def ask_all() -> list[Any]:
        return list(await asyncio.gather(*(ask(address) for address in args)))

    return dict(zip(args, client.sync(ask_all), strict=True))
