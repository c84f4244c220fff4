"""A scatter no frozen or dead worker can hold: bounded, and given up on silent workers.

A scatter goes through the scheduler, which sends each input to a worker it believes
alive: one that just died is retried for Dask's connect timeout (30 s by default), one
that froze holds the call until it thaws. The run loop waits for its scatters, so a
freeze held it, and every delivery with it, for as long as the freeze lasted (nightly
seed 2718: 1.2 s for steps whose worker had died, not frozen).
So a scatter still under way after STALL_AFTER asks every worker to answer within
PING_TIMEOUT: if one it sends to does not, it is given up, and made again at once to
those that did (and so are the scatters of the next AVOID_FOR seconds); if all answer,
it is only slow, and is bounded (`scatter_bound`: 2 s plus the transfer time at
20 MB/s). A heartbeat cannot tell a frozen worker from a slow one: Dask's come every
0.5 s or more, so a worker frozen for less than that looks alive; asking is faster and
sure. (Scatters used to wait 30 s, and the run loop with them: the 30-second recovery
tails of issue 12.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, cast

from dask.sizeof import sizeof
from distributed import Client

from resilience.scheduler_watch import ask_scheduler, worker_addresses

logger = logging.getLogger(__name__)

PLACEMENT_BASE = 2.0  # seconds a scatter or replicate may take, plus the transfer time...
TRANSFER_FLOOR = 20e6  # ... at this many bytes per second
WORKER_WAIT = 2.0  # seconds the scheduler holds a scatter for a worker to exist (bounded
# sooner by STALL_AFTER: with no worker at all, the run loop must count and say it waits)
STALL_AFTER = 0.2  # seconds: a scatter still under way then asks the workers to answer...
PING_TIMEOUT = 0.15  # ... within this many seconds
AVOID_FOR = 10.0  # seconds during which scatters go to the workers that answered only


def scatter_bound(nbytes: int) -> float:
    """Seconds a scatter or replicate of `nbytes` may take before it is given up."""
    return PLACEMENT_BASE + nbytes / TRANSFER_FLOOR


async def answering(client: Client, timeout: float) -> tuple[list[str], list[str]]:
    """The cluster's workers, and those of them that answer a request within `timeout`
    seconds (a frozen worker accepts the connection, but never answers). On the client's
    event loop."""

    async def answers(address: str) -> bool:
        try:
            await asyncio.wait_for(client.rpc(address).identity(), timeout)
        except Exception:  # frozen, dead, or refusing: not one to scatter to now
            return False
        return True

    addresses = list(await client.scheduler.ncores())  # type: ignore[union-attr]
    replies = await asyncio.gather(*(answers(address) for address in addresses))
    return addresses, [a for a, answered in zip(addresses, replies, strict=True) if answered]


def forget_orphans(keys: list[str], client: str, dask_scheduler: Any = None) -> list[str]:
    """On the scheduler: release those of `keys` that no client wants, as `client`
    (wanted, then released: Dask forgets a key its last client releases)."""
    orphans = [key for key in keys
               if (ts := dask_scheduler.tasks.get(key)) is not None and not ts.who_wants]
    if orphans and client in dask_scheduler.clients:
        dask_scheduler.client_desires_keys(keys=orphans, client=client)
        dask_scheduler.client_releases_keys(keys=orphans, client=client,
                                            stimulus_id=f"resilience-orphans-{time.time()}")
    return orphans


class NoWorkers(RuntimeError):
    """The cluster has no worker to place inputs on (the run loop tries again)."""


class ScatterStalled(TimeoutError):
    """A scatter did not finish in time; `silent`: the workers that did not answer since."""

    def __init__(self, seconds: float, silent: set[str]) -> None:
        super().__init__(f"a scatter took over {seconds:.2f} s; {len(silent)} worker(s) "
                         "do not answer")
        self.silent = silent


class BoundedScatter:
    """One run's scatters: each bounded, and made again to the workers that answer when
    one it was sent to does not. Remembers those workers for AVOID_FOR seconds, and the
    keys of the scatters it gave up (they may still land: `release_abandoned`)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.silent: tuple[float, set[str]] | None = None  # (until, workers)
        self.abandoned: list[str] = []  # keys of scatters given up (they may land later)

    def __call__(self, named: dict[str, Any], workers: list[str] | None) -> dict[str, Any]:
        """Scatter, bounded; stalled, once more to the workers that answer only. Returns
        a future by key of `named` (a scatter made again is under new keys: the one given
        up may still land, and must not bring back keys released meanwhile)."""
        bound = scatter_bound(sum(sizeof(value) for value in named.values()))
        for last in (False, True):
            sent = {f"{key}-again" if last else key: key for key in named}
            try:
                futures = self._client.sync(
                    self._watched, {new: named[key] for new, key in sent.items()},
                    self._targets(workers), bound)
                return {sent[new]: future for new, future in futures.items()}
            except ScatterStalled as stalled:
                self.abandoned.extend(sent)
                if last:
                    raise
                logger.info("%s; scattering %d inputs again to the others", stalled,
                            len(named))
                if stalled.silent:
                    self.silent = (time.monotonic() + AVOID_FOR, stalled.silent)
            except Exception:  # the run loop places these inputs again, under new keys
                self._forget_orphans(list(sent))
                raise
        raise AssertionError("unreachable")

    def silence_known(self) -> bool:
        """A worker did not answer within the last AVOID_FOR seconds."""
        return self.silent is not None and time.monotonic() <= self.silent[0]

    def a_worker_is_silent(self) -> bool:
        """A worker does not answer now, or did not lately (it is remembered)."""
        if self.silence_known():
            return True
        workers, live = self._client.sync(answering, self._client, PING_TIMEOUT)
        if live and set(workers) - set(live):  # later scatters go to those that answer
            self.silent = (time.monotonic() + AVOID_FOR, set(workers) - set(live))
            return True
        return False

    def release_abandoned(self) -> None:
        """Release the inputs of scatters given up, should they have landed since; with
        the client no longer running (a lost scheduler), only forget them."""
        abandoned, self.abandoned = self.abandoned, []
        if abandoned and self._client.status == "running":
            with contextlib.suppress(Exception):  # the client may be closing already
                self._client._send_to_scheduler({"op": "client-releases-keys",
                                                 "keys": abandoned, "client": self._client.id})

    def _forget_orphans(self, keys: list[str]) -> None:
        """Have the scheduler forget those of a failed scatter's `keys` that no client
        wants. Dask records a scatter's keys one by one, and raises on a worker that left
        meanwhile (`Scheduler.update_data`'s KeyError): the keys recorded before it stay
        in memory, on the worker and the scheduler, wanted by no one, for ever (a test
        whose workers were killed left two behind on the shared cluster, run after run)."""
        try:
            forgotten = ask_scheduler(self._client, forget_orphans, keys, self._client.id)
        except Exception as error:  # the scheduler may be what failed
            logger.debug("could not release a failed scatter's keys: %r", error)
            return
        if forgotten:
            logger.info("released %d inputs a failed scatter left behind", len(forgotten))

    async def _watched(self, named: dict[str, Any], targets: list[str] | None,
                       bound: float) -> dict[str, Any]:
        """The scatter; if it takes over STALL_AFTER, ask the workers, and give it up at
        once when one of its targets does not answer, else at `bound`."""
        started = time.monotonic()
        # `timeout` bounds the wait for a worker to exist ("No valid workers", raised).
        scatter = asyncio.ensure_future(self._client._scatter(
            named, workers=targets, hash=False, timeout=WORKER_WAIT))
        done, _ = await asyncio.wait({scatter}, timeout=STALL_AFTER)
        if done:
            return cast(dict[str, Any], scatter.result())
        workers, live = await answering(self._client, PING_TIMEOUT)
        if not workers:  # the scheduler would wait WORKER_WAIT for one, and the run loop
            scatter.cancel()  # with it, before it can count (and say) it waits for workers
            raise NoWorkers("no worker to scatter to")
        # None live: the scatter is waiting for a worker to answer, as it should.
        if live and set(targets or workers) - set(live):
            scatter.cancel()
            raise ScatterStalled(time.monotonic() - started, set(workers) - set(live))
        # Everyone answers: a slow scatter, not a frozen worker. (asyncio.wait, not
        # wait_for: its own errors, e.g. "No valid workers", are raised as they are.)
        done, _ = await asyncio.wait({scatter}, timeout=bound - (time.monotonic() - started))
        if done:
            return cast(dict[str, Any], scatter.result())
        scatter.cancel()
        raise ScatterStalled(time.monotonic() - started, set())

    def _targets(self, workers: list[str] | None) -> list[str] | None:
        """`workers`, less those that did not answer lately (after a scatter stalled).
        Read against the workers there are now: one that answered may have died since,
        and a scatter naming it fails."""
        if self.silent is None or not self.silence_known():
            return workers
        silent = self.silent[1]
        current = worker_addresses(self._client)
        chosen = [w for w in (workers or current) if w in current and w not in silent]
        return chosen or workers
