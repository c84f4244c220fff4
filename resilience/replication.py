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

No wait here is long: every scatter is a `BoundedScatter`, which a frozen or dead
worker cannot hold, and every copy is waited for within a bound.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any, cast

from dask.sizeof import sizeof
from distributed import Client, Future

from resilience import amm_policy
from resilience.bounded_scatter import BoundedScatter, scatter_bound
from resilience.config import ResilienceConfig
from resilience.errors import ConfigError
from resilience.phantom import holders_lacking
from resilience.scheduler_watch import CALL_BOUND, ask_scheduler, worker_addresses

logger = logging.getLogger(__name__)

PLACEMENT_ROUNDS = 3  # re-scatters of inputs lost before their replicas existed
REPLICATION_WAIT = 2.0  # seconds to wait for new inputs' copies before submitting anyway
TOP_UP_EVERY = 0.25  # seconds between asking the guard again while copies are missing
SILENT_LOOK = 0.03  # ... and before going on without them, when a worker is known silent


def holders_of(client: Client, futures: Sequence[Any]) -> dict[Any, list[str]]:
    """The workers holding each future's data, by key; none for a key the scheduler
    forgot. (Client.who_has raises instead: a scattered input whose only holder died is
    forgotten at once, and its future cancelled, which is what placing must see.)"""
    scheduler = cast(Any, client.scheduler)  # None only before a client first connects
    keys = [future.key for future in futures]
    return cast(dict[Any, list[str]],
                client.sync(scheduler.who_has, keys=keys, callback_timeout=CALL_BOUND))


class InputPlacement:
    """Places step inputs on the cluster for one run, keeping `max_task_replicas` copies."""

    def __init__(self, client: Client, config: ResilienceConfig, run_id: str) -> None:
        self._client = client
        self._config = config
        self.key_prefix = f"rs-in-{run_id}-"
        self.shared_prefix = f"rs-all-{run_id}-"
        self._protected: list[str] = []
        self._ids = itertools.count()
        self._scatter = BoundedScatter(client)
        # replicate(n=1) could only delete copies: one copy is no replication.
        self._replicas = config.max_task_replicas
        self._replicates = config.scatter and self._replicas not in (0, 1)

    def start(self) -> None:
        """Install the guard (replicas must survive the AMM) before anything is submitted."""
        if not self._config.scatter:
            return
        if self._config.replica_guard == "policy":
            if self._replicates:
                self._protect(self.key_prefix, self._replicas)
            self._protect(self.shared_prefix, None)
        if not self._replicates:
            return
        status = ask_scheduler(self._client, amm_policy.amm_status)
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

    def lacking_copies(self, placed: Sequence[Any]) -> list[bool]:
        """Which placed inputs hold fewer copies than asked, now: a placement may go on
        without them (a silent worker, a fleet smaller than `max_task_replicas`), and
        while they are missing one fault can take the input (see `JobBook.track`)."""
        futures = [value for value in placed if isinstance(value, Future)]
        if not self._replicates or not futures:
            return [False] * len(placed)
        # A scheduler lost since the submission cannot say (a deploy campaign's run died
        # of the CommClosedError): count every input short, so the client keeps them all.
        every = [isinstance(value, Future) for value in placed]
        if self._client.status != "running":
            return every
        try:
            asked = self._replicas or len(worker_addresses(self._client))  # None: every worker
            who_has = holders_of(self._client, list({f.key: f for f in futures}.values()))
        except Exception as error:
            logger.debug("cannot count the copies of placed inputs: %r", error)
            return every
        return [isinstance(value, Future) and len(who_has.get(value.key, ())) < asked
                for value in placed]

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
        who_has = holders_of(self._client, futures)
        return [f.key for f in futures if not who_has.get(f.key)]

    def _await_copies(self, futures: list[Any], replicas: int | None) -> list[str]:
        """Have the scheduler-side guard make the copies (`replicas` each, None: one per
        running worker), and wait (bounded) until they exist.

        The guard only ever copies to running workers, so a worker dying mid-copy costs
        a retry, never a stuck call (unlike Client.replicate). A frozen worker is running
        to the scheduler, and a copy sent to it lands only when it thaws: copies still
        missing after a round of TOP_UP_EVERY are left to the guard, in the background,
        when a worker does not answer (nightly seed 2718: the run loop waited out a
        freeze here, with every delivery)."""
        deadline = time.monotonic() + REPLICATION_WAIT
        for round_ in itertools.count():
            running = ask_scheduler(self._client, amm_policy.top_up)
            wanted = running if replicas is None else min(replicas, running)
            # A worker known to be silent may be the guard's pick: look once, briefly.
            look = SILENT_LOOK if self._scatter.silence_known() else TOP_UP_EVERY
            retry_at = time.monotonic() + look
            while True:
                who_has = holders_of(self._client, futures)
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
            if round_ == 0 and self._scatter.a_worker_is_silent():
                logger.info("%d inputs lack copies, and a worker does not answer; going on, "
                            "the guard keeps trying in the background", len(short))
                return lost
            if round_ == 0 and (phantoms := self._credited_wrongly(short, who_has)):
                logger.info("%d inputs are credited to a worker that does not hold them; "
                            "placing them again", len(phantoms))
                return lost + phantoms
        raise AssertionError("unreachable")

    def _credited_wrongly(self, futures: list[Any], who_has: dict[Any, list[str]]
                          ) -> list[str]:
        """Keys of `futures` credited to a worker that does not hold them. No copy can
        be made from it, and placing waited out REPLICATION_WAIT (nightly seeds 777 and
        4848: 2 s with no submission; then a step sent to that worker hung). A scatter
        is credited so when its worker dies and another process comes back at the same
        address before the scatter is recorded (see `phantom`)."""
        keys = {f.key: who_has.get(f.key, []) for f in futures}
        return list(holders_lacking(self._client, keys))

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
        self._scatter.release_abandoned()
        if self._client.status != "running":  # a lost scheduler took the guard with it
            self._protected = []
            return
        protected, self._protected = self._protected, []
        for prefix in protected:
            try:
                ask_scheduler(self._client, amm_policy.unprotect, prefix)
            except Exception as error:  # the cluster may already be gone
                logger.warning("could not remove the replica guard: %r", error)
                return

    def _protect(self, prefix: str, n: int | None) -> None:
        ask_scheduler(self._client, amm_policy.protect, prefix, n, self._client.id)
        self._protected.append(prefix)
