"""How step inputs reach the workers: scattered (and replicated) in batches, or inline.

Batches matter: PyRosettaCluster pays one scatter and one replicate round trip per
task; here a whole batch of inputs costs one scatter and one round of copies.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

from distributed import Client

from resilience import amm_policy
from resilience.config import ResilienceConfig
from resilience.errors import ConfigError

logger = logging.getLogger(__name__)

PLACEMENT_ROUNDS = 3  # re-scatters of inputs lost before their replicas existed
PLACEMENT_TIMEOUT = 30.0  # seconds a scatter or replicate may take before it is retried
WORKER_WAIT = 2.0  # seconds a scatter waits for a worker to exist before giving up this round
REPLICATION_WAIT = 10.0  # seconds to wait for new inputs' copies before submitting anyway
TOP_UP_EVERY = 0.25  # seconds between asking the guard again while copies are missing


class InputPlacement:
    """Places step inputs on the cluster for one run, keeping `max_task_replicas` copies."""

    def __init__(self, client: Client, config: ResilienceConfig, run_id: str) -> None:
        self._client = client
        self._config = config
        self.key_prefix = f"rs-in-{run_id}-"
        self._protected = False
        self._ids = itertools.count()
        # replicate(n=1) could only delete copies: one copy is no replication.
        self._replicas = config.max_task_replicas
        self._replicates = config.scatter and self._replicas not in (0, 1)

    def start(self) -> None:
        """Make sure replicas will survive the AMM before anything is submitted."""
        if not self._replicates:
            return
        if self._config.replica_guard == "policy":
            self._install_guard()
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
        named = {f"{self.key_prefix}{next(self._ids)}": payload for payload in payloads}
        futures = self._scatter(named, workers)
        if self._replicates:
            for _ in range(PLACEMENT_ROUNDS):
                lost = self._replicate(list(futures.values()), workers)
                if not lost:
                    break
                futures.update(self._scatter({k: named[k] for k in lost}, workers))
        return [futures[key] for key in named]

    def _scatter(self, named: dict[str, Any], workers: list[str] | None) -> dict[str, Any]:
        # `timeout` bounds the wait for a worker to exist; `callback_timeout` the whole
        # call, should a worker freeze mid-transfer.
        return dict(self._client.sync(
            self._client._scatter, named, workers=workers, hash=False,
            timeout=WORKER_WAIT, callback_timeout=PLACEMENT_TIMEOUT,
        ))

    def _replicate(self, futures: list[Any], workers: list[str] | None) -> list[str]:
        """Make the copies; return the keys that lost every copy meanwhile."""
        if self._protected:
            return self._await_copies(futures)
        try:
            # Bounded: Dask's replicate can loop for as long as a chosen worker is dead.
            self._client.replicate(futures, n=self._replicas, workers=workers,
                                   callback_timeout=PLACEMENT_TIMEOUT)
        except Exception as error:  # a holder died mid-copy; the survivors are checked below
            logger.info("replicating %d inputs was interrupted: %r", len(futures), error)
        who_has = self._client.who_has(futures)
        return [f.key for f in futures if not who_has.get(f.key)]

    def _await_copies(self, futures: list[Any]) -> list[str]:
        """Have the scheduler-side guard make the copies, and wait (bounded) until they exist.

        The guard only ever copies to running workers, so a worker dying mid-copy costs
        a retry, never a stuck call (unlike Client.replicate)."""
        deadline = time.monotonic() + REPLICATION_WAIT
        while True:
            running = self._client.run_on_scheduler(amm_policy.top_up)
            wanted = running if self._replicas is None else min(self._replicas, running)
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

    def close(self) -> None:
        """Remove this run's protection (restoring ReduceReplicas if it was the last run)."""
        if self._protected:
            self._protected = False
            try:
                self._client.run_on_scheduler(amm_policy.unprotect, self.key_prefix)
            except Exception as error:  # the cluster may already be gone
                logger.warning("could not remove the replica guard: %r", error)

    def _install_guard(self) -> None:
        try:
            self._client.run_on_scheduler(
                amm_policy.protect, self.key_prefix, self._replicas
            )
        except Exception as error:
            raise ConfigError(
                f"could not install the replica guard on the scheduler ({error!r}). Install "
                "resilience-testbed in the scheduler's environment, or switch ReduceReplicas "
                "off (distributed.scheduler.active-memory-manager.start: false) and pass "
                "replica_guard='require-amm-off'."
            ) from error
        self._protected = True
