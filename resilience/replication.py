"""How step inputs reach the workers: scattered (and replicated) in batches, or inline.

Batches matter: PyRosettaCluster pays one scatter and one replicate round trip per
task; here a whole batch of inputs costs one scatter and one round of copies.

The run's shared input (every task's step 0 reads it) is held by every worker, whatever
`max_task_replicas` says: it is one object, not one per task, and Dask places a task
only on a worker that holds one of its inputs. With a single holder every step 0 would
queue on that worker, and a step whose worker died would restart there, behind the
others, or (the holder itself dead) wait for the client to place the input again; held
everywhere, Dask restarts it on an idle worker by itself, as fast as a step with no
input at all. The guard (`amm_policy`) makes the copies, keeps them, and gives one to
each worker that joins; placing the shared input waits (bounded) for its first copies.

No wait here is long. A scatter goes through the scheduler, which sends each input to
a worker it believes alive: one that just died is retried for Dask's connect timeout
(30 s by default), one that froze holds the call until it thaws. So a scatter is bounded
(`scatter_bound`: 2 s plus the transfer time at 20 MB/s); past that it is retried at
once on the workers that sent a heartbeat lately, and, failing again, the run loop
tries again at its next round while it goes on collecting results. (Scatters used to
wait 30 s, and the run loop with them: the 30-second recovery tails of issue 12.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

from dask.sizeof import sizeof
from distributed import Client

from resilience import amm_policy
from resilience.config import ResilienceConfig
from resilience.errors import ConfigError

logger = logging.getLogger(__name__)

PLACEMENT_ROUNDS = 3  # re-scatters of inputs lost before their replicas existed
PLACEMENT_BASE = 2.0  # seconds a scatter or replicate may take, plus the transfer time...
TRANSFER_FLOOR = 20e6  # ... at this many bytes per second
WORKER_WAIT = 2.0  # seconds a scatter waits for a worker to exist before giving up this round
REPLICATION_WAIT = 2.0  # seconds to wait for new inputs' copies before submitting anyway
TOP_UP_EVERY = 0.25  # seconds between asking the guard again while copies are missing
RESPONSIVE = 1.5  # seconds: a worker silent longer is left out after a scatter timed out
AVOID_FOR = 10.0  # seconds during which scatters go to those responsive workers only


def scatter_bound(nbytes: int) -> float:
    """Seconds a scatter or replicate of `nbytes` may take before it is given up."""
    return PLACEMENT_BASE + nbytes / TRANSFER_FLOOR


def responsive_workers(silence: float, dask_scheduler: Any) -> list[str]:
    """On the scheduler: running workers heard from (heartbeat) in the last `silence` s."""
    now = time.time()
    return [ws.address for ws in dask_scheduler.running if now - ws.last_seen <= silence]


class InputPlacement:
    """Places step inputs on the cluster for one run, keeping `max_task_replicas` copies."""

    def __init__(self, client: Client, config: ResilienceConfig, run_id: str) -> None:
        self._client = client
        self._config = config
        self.key_prefix = f"rs-in-{run_id}-"
        self.shared_prefix = f"rs-all-{run_id}-"
        self._protected: list[str] = []
        self._ids = itertools.count()
        self._responsive: tuple[float, list[str]] | None = None  # (until, workers)
        self._abandoned: list[str] = []  # keys of scatters given up (they may land later)
        # replicate(n=1) could only delete copies: one copy is no replication.
        self._replicas = config.max_task_replicas
        self._replicates = config.scatter and self._replicas not in (0, 1)

    def start(self) -> None:
        """Install the guard (replicas must survive the AMM) before anything is submitted."""
        if not self._config.scatter:
            return
        if self._config.replica_guard == "policy" and self._replicates:
            self._install_guard()
        elif self._config.replica_guard == "policy":
            try:  # only the shared input's copies to keep: without the guard, still run
                self._protect(self.shared_prefix, None)
            except Exception as error:
                logger.info("no replica guard on the scheduler (%r): the AMM may drop the "
                            "shared input's extra copies", error)
        if not self._replicates:
            return
        status = self._client.run_on_scheduler(amm_policy.amm_status)
        if status["running"] and "ReduceReplicas" in status["policies"]:
            raise ConfigError(
                f"max_task_replicas={self._replicas!r} needs replicas to survive, but the "
                "scheduler's Active Memory Manager runs ReduceReplicas, which drops every "
                "extra copy within seconds. Set distributed.scheduler.active-memory-manager."
                "start: false on the scheduler, or remove ReduceReplicas from "
                "distributed.scheduler.active-memory-manager.policies, or use "
                "replica_guard='policy' to protect only this run's inputs."
            )

    def place(self, payloads: Sequence[Any], workers: list[str] | None = None) -> list[Any]:
        """One placed input per payload: a Future when scattering, else the payload itself.

        With replication, every input has its copies before this returns: an input whose
        only holder died between the scatter and the replicate is scattered again from
        the client's copy, which is still at hand. `workers` restricts where copies go.
        """
        if not self._config.scatter or not payloads:
            return list(payloads)
        return self._place(payloads, workers, self.key_prefix)

    def place_shared(self, payload: Any, workers: list[str] | None = None) -> Any:
        """The run's shared input, as a Future with its `max_task_replicas` copies made
        (as `place`); the guard copies it on to every worker (of `workers`) in the
        background, and to every worker that joins later."""
        [future] = self._place([payload], workers, self.shared_prefix)
        if self._replicates:
            return future
        try:
            if self.shared_prefix in self._protected:
                # Waited for (bounded): with one holder, Dask would queue every step 0 on
                # it, and a run without replicas took 15 % longer than one with copies
                # everywhere, with no preemption at all (issue 13's study, rate 0).
                self._await_copies([future], None)
            else:  # no guard: one bounded round of copies, which the AMM may undo
                self._client.replicate([future], n=None, workers=workers,
                                       callback_timeout=scatter_bound(sizeof(payload)))
        except Exception as error:  # fewer copies only slow a restart down
            logger.info("could not copy the shared input to every worker: %r", error)
        return future

    def _place(self, payloads: Sequence[Any], workers: list[str] | None,
               prefix: str) -> list[Any]:
        keys = [f"{prefix}{next(self._ids)}" for _ in payloads]
        futures = self._scatter(dict(zip(keys, payloads, strict=True)), workers)
        if self._replicates:
            for _ in range(PLACEMENT_ROUNDS):
                lost = set(self._replicate(list(futures.values()), workers))
                if not lost:
                    break
                # Under new keys: the scheduler may still know a lost key, with the steps
                # that wanted it, and scattering onto it can corrupt its state (a scattered
                # key "queued" to run, which fails every worker's registration after).
                for i, key in enumerate(keys):
                    if key in lost:
                        keys[i] = f"{prefix}{next(self._ids)}"
                        del futures[key]
                futures.update(self._scatter(
                    {key: payloads[i] for i, key in enumerate(keys) if key not in futures},
                    workers))
        return [futures[key] for key in keys]

    def _scatter(self, named: dict[str, Any], workers: list[str] | None) -> dict[str, Any]:
        """Scatter, bounded; on a timeout, once more to the responsive workers only."""
        bound = scatter_bound(sum(sizeof(value) for value in named.values()))
        for last in (False, True):
            try:
                # `timeout` bounds the wait for a worker to exist; `callback_timeout` the
                # whole call, should a chosen worker be dead or frozen.
                return dict(self._client.sync(
                    self._client._scatter, named, workers=self._targets(workers),
                    hash=False, timeout=WORKER_WAIT, callback_timeout=bound,
                ))
            except (TimeoutError, asyncio.TimeoutError) as error:
                if "No valid workers" in str(error):  # none to scatter to: nothing sent
                    raise
                self._abandoned.extend(named)
                if last:
                    raise
                responsive = self._client.run_on_scheduler(responsive_workers, RESPONSIVE)
                logger.info("scattering %d inputs took over %.1f s; trying again on the %d "
                            "workers heard from lately", len(named), bound, len(responsive))
                self._responsive = (time.monotonic() + AVOID_FOR, list(responsive))
        raise AssertionError("unreachable")

    def _targets(self, workers: list[str] | None) -> list[str] | None:
        """`workers`, less those that did not answer lately (after a scatter timed out)."""
        if self._responsive is None or time.monotonic() > self._responsive[0]:
            self._responsive = None
            return workers
        responsive = self._responsive[1]
        chosen = [w for w in (workers or responsive) if w in responsive]
        return chosen or workers

    def _replicate(self, futures: list[Any], workers: list[str] | None) -> list[str]:
        """Make the copies; return the keys that lost every copy meanwhile."""
        if self._protected:  # the guard protects this run's inputs, shared or not
            return self._await_copies(futures, self._replicas)
        try:
            # Bounded: Dask's replicate can loop for as long as a chosen worker is dead.
            self._client.replicate(futures, n=self._replicas, workers=workers,
                                   callback_timeout=scatter_bound(0))
        except Exception as error:  # a holder died mid-copy; the survivors are checked below
            logger.info("replicating %d inputs was interrupted: %r", len(futures), error)
        who_has = self._client.who_has(futures)
        return [f.key for f in futures if not who_has.get(f.key)]

    def _await_copies(self, futures: list[Any], replicas: int | None) -> list[str]:
        """Have the scheduler-side guard make the copies (`replicas` each, None: one per
        running worker), and wait (bounded) until they exist.

        The guard only ever copies to running workers, so a worker dying mid-copy costs
        a retry, never a stuck call (unlike Client.replicate)."""
        deadline = time.monotonic() + REPLICATION_WAIT
        while True:
            running = self._client.run_on_scheduler(amm_policy.top_up)
            wanted = running if replicas is None else min(replicas, running)
            retry_at = time.monotonic() + TOP_UP_EVERY
            while True:
                who_has = self._client.who_has(futures)
                lost = [f.key for f in futures if not who_has.get(f.key)]
                short = [f for f in futures if 0 < len(who_has.get(f.key, ())) < wanted]
                if not short:
                    return lost
                if time.monotonic() > deadline:
                    logger.info("%d inputs still lack copies after %ss; the guard keeps "
                                "trying in the background", len(short), REPLICATION_WAIT)
                    return lost
                if time.monotonic() > retry_at:
                    break
                time.sleep(0.005)

    def reconnected(self) -> None:
        """The client is back from a lost scheduler, most likely a new one: put this
        run's guard on it (else every placement waits REPLICATION_WAIT for copies that
        nobody makes)."""
        protected, self._protected = self._protected, []
        try:
            for prefix in protected:
                self._protect(prefix, self._replicas if prefix == self.key_prefix else None)
        except Exception as error:  # copies are then made by Client.replicate
            logger.warning("the new scheduler has no replica guard: %r", error)

    def close(self) -> None:
        """Remove this run's protection (restoring ReduceReplicas if it was the last run),
        and release the inputs of scatters given up, should they have landed since."""
        if self._client.status != "running":  # a lost scheduler took the guard with it
            self._abandoned, self._protected = [], []
            return
        abandoned, self._abandoned = self._abandoned, []
        if abandoned:
            with contextlib.suppress(Exception):  # the client may be closing already
                self._client._send_to_scheduler({"op": "client-releases-keys",
                                                 "keys": abandoned, "client": self._client.id})
        protected, self._protected = self._protected, []
        for prefix in protected:
            try:
                self._client.run_on_scheduler(amm_policy.unprotect, prefix)
            except Exception as error:  # the cluster may already be gone
                logger.warning("could not remove the replica guard: %r", error)
                return

    def _protect(self, prefix: str, n: int | None) -> None:
        self._client.run_on_scheduler(amm_policy.protect, prefix, n)
        self._protected.append(prefix)

    def _install_guard(self) -> None:
        try:
            self._protect(self.key_prefix, self._replicas)
            self._protect(self.shared_prefix, None)
        except Exception as error:
            raise ConfigError(
                f"could not install the replica guard on the scheduler ({error!r}). Install "
                "resilience-testbed in the scheduler's environment, or switch ReduceReplicas "
                "off (distributed.scheduler.active-memory-manager.start: false) and pass "
                "replica_guard='require-amm-off'."
            ) from error
