"""Scheduler-side guard that keeps n copies of a run's inputs, with the AMM left on.

The Active Memory Manager's ReduceReplicas drops every replica beyond one, every two
seconds, so `Client.replicate` alone buys nothing. Switching the AMM off cluster-wide
costs every other user its memory management. Instead this module, run on the
scheduler through `Client.run_on_scheduler`:

- swaps each ReduceReplicas in the main AMM for `ReduceReplicasExcept`, which skips
  keys under a protected prefix and behaves exactly like ReduceReplicas otherwise;
- runs a small dedicated AMM with one `KeepReplicas` policy that tops protected keys
  back up to n copies, e.g. onto a replacement worker after a holder died: every
  half second, at once when a worker leaves or joins, and on demand (`top_up`), which
  is how freshly scattered inputs get their copies;
- takes out of the main AMM a RetireWorker policy Dask left behind, when a new worker
  joins at the retired worker's address (it would drop that worker's copies), and, as
  a run starts protecting, any such policy naming a worker that is not retiring.

Several runs may share a scheduler: each registers its own key prefix and n; the
guard is removed, and ReduceReplicas restored, when the last one leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, cast

from distributed.active_memory_manager import (
    ActiveMemoryManagerExtension,
    ActiveMemoryManagerPolicy,
    ReduceReplicas,
    RetireWorker,
    Suggestion,
    SuggestionGenerator,
)
from distributed.core import Status
from distributed.diagnostics.plugin import SchedulerPlugin

logger = logging.getLogger(__name__)

EXTENSION = "resilience-replicas"
KEEP_INTERVAL = 0.5  # seconds between top-ups: a lost copy is re-made this fast


def protect(prefix: str, n: int | None, owner: str | None = None,
            dask_scheduler: Any = None) -> dict[str, Any]:
    """Keep n copies (None: every worker) of every key starting with `prefix`, for the
    client `owner` (its id): when that client leaves the scheduler, so does the prefix."""
    guard = dask_scheduler.extensions.get(EXTENSION)
    if guard is None:
        guard = ReplicaGuard(dask_scheduler)
        dask_scheduler.extensions[EXTENSION] = guard
    # A worker may have joined at a retired worker's address while no guard listened.
    forget_stale_retirements(dask_scheduler)
    guard.protected[prefix] = n
    if owner is not None:
        guard.owners[prefix] = owner
    return cast(dict[str, Any], guard.status())


def unprotect(prefix: str, dask_scheduler: Any) -> dict[str, Any]:
    """Stop protecting `prefix`; tear the guard down when nothing is protected."""
    guard = dask_scheduler.extensions.get(EXTENSION)
    if guard is None:
        return {"protected": []}
    guard.protected.pop(prefix, None)
    guard.owners.pop(prefix, None)
    if not guard.protected:
        guard.close()
        del dask_scheduler.extensions[EXTENSION]
        return {"protected": []}
    return cast(dict[str, Any], guard.status())


def top_up(dask_scheduler: Any) -> int:
    """Start the missing copies of protected keys now, rather than at the next interval.

    Returns how many workers are running: copies go to those only."""
    guard = dask_scheduler.extensions.get(EXTENSION)
    if guard is not None:
        guard.top_up()
    return len(dask_scheduler.running)


def amm_status(dask_scheduler: Any) -> dict[str, Any]:
    """What the scheduler's main AMM is doing: running?, and its policies' class names."""
    amm = dask_scheduler.extensions.get("amm")
    if amm is None:
        return {"running": False, "policies": []}
    return {
        "running": bool(amm.running),
        "policies": sorted(type(policy).__name__ for policy in amm.policies),
    }


class ReplicaGuard:
    """The scheduler extension behind `protect`/`unprotect`/`top_up`."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.protected: dict[str, int | None] = {}
        self.owners: dict[str, str] = {}  # prefix -> the id of the client it is kept for
        self._swapped: list[ReduceReplicas] = []
        main = scheduler.extensions.get("amm")
        if main is not None:
            for policy in list(main.policies):
                if type(policy) is ReduceReplicas:
                    main.policies.discard(policy)
                    main.add_policy(ReduceReplicasExcept(self.protected))
                    self._swapped.append(policy)
        self._keeper = ActiveMemoryManagerExtension(
            scheduler,
            policies={KeepReplicas(self.protected)},
            register=False,
            start=True,
            interval=KEEP_INTERVAL,
        )
        self._plugin = TopUpOnMembership(self)
        scheduler.add_plugin(self._plugin, name=EXTENSION, idempotent=False)

    def top_up(self) -> None:
        self._keeper.run_once()

    def status(self) -> dict[str, Any]:
        return {"protected": sorted(self.protected), "swapped": len(self._swapped)}

    def close(self) -> None:
        self._keeper.stop()
        self.scheduler.remove_plugin(name=EXTENSION)
        main = self.scheduler.extensions.get("amm")
        if main is None:
            return
        for policy in list(main.policies):
            if isinstance(policy, ReduceReplicasExcept):
                main.policies.discard(policy)
        for original in self._swapped:
            main.add_policy(original)


class TopUpOnMembership(SchedulerPlugin):
    """A lost worker took copies with it, a new one holds none: top up at once, not at
    the next interval (a new worker can take a step only once it holds its input).

    The AMM runs after the scheduler has finished adding or removing the worker (a
    callback on its event loop), so it sees who holds what now.

    A client that leaves takes its prefixes with it: the scheduler has released its keys,
    and a client closed before its run's generator (or lost with its head node) could
    not take the guard down itself, which then stayed on the scheduler for good.
    """

    def __init__(self, guard: ReplicaGuard) -> None:
        self._guard = guard

    def add_worker(self, scheduler: Any, worker: str) -> None:
        forget_retirement(scheduler, worker)
        scheduler.loop.add_callback(self._guard.top_up)

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        scheduler.loop.add_callback(self._guard.top_up)

    def remove_client(self, scheduler: Any, client: str) -> None:
        for prefix in [p for p, owner in self._guard.owners.items() if owner == client]:
            unprotect(prefix, scheduler)


def forget_stale_retirements(scheduler: Any) -> None:
    """`forget_retirement` at each worker that is not retiring.

    Dask marks a worker it retires closing_gracefully as it adds the policy, so one
    naming a worker in any other state is left over. A worker that joined at a retired
    worker's address while no guard listened (between two runs) is adopted by it: a
    focused chaos campaign found one at the start of 4 runs of 150. Its drop and a
    retirement of the input's other holder, in one AMM pass, lose an input kept in 2
    copies to that single fault: the likely cause of nightly seed 7070's one such loss.
    """
    for address, worker in list(scheduler.workers.items()):
        if worker.status != Status.closing_gracefully:
            forget_retirement(scheduler, address)


def forget_retirement(scheduler: Any, address: str) -> None:
    """Take out of Dask's main AMM any RetireWorker policy naming `address`, which a
    worker has just joined at.

    The policy names its worker by address, and leaves the AMM only on a pass that finds
    no worker there. One left over from retiring a worker adopts a new worker at the same
    address (a replacement, a fixed --worker-port): it drops each copy that worker holds
    wherever another exists, at every pass, the guard's too. Nightly seed 777 lost inputs
    kept in 2 copies to a single fault so. A worker that has just joined is not retiring,
    and Dask's wait for the old one ended when it left (it polls every 10 ms).
    """
    amm = scheduler.extensions.get("amm")
    if amm is None:
        return
    for policy in list(amm.policies):
        if isinstance(policy, RetireWorker) and policy.address == address:
            amm.policies.discard(policy)
            logger.info("a new worker joined at %s: its retirement by the AMM is over",
                        address)


class ReduceReplicasExcept(ReduceReplicas):
    """ReduceReplicas that leaves keys under the protected prefixes alone."""

    def __init__(self, protected: dict[str, int | None]) -> None:
        self.protected = protected

    def run(self) -> SuggestionGenerator:
        prefixes = tuple(self.protected)
        for suggestion in super().run():
            key = suggestion.ts.key
            if not (isinstance(key, str) and key.startswith(prefixes)):
                yield suggestion


class KeepReplicas(ActiveMemoryManagerPolicy):
    """Suggest new copies of protected keys that have fewer than their n copies."""

    def __init__(self, protected: dict[str, int | None]) -> None:
        self.protected = protected

    def run(self) -> SuggestionGenerator:
        scheduler = self.manager.scheduler
        running = scheduler.running
        for ts, n in self._protected_tasks(scheduler):
            if ts.state != "memory" or not ts.who_has:
                continue
            wanted = len(running) if n is None else min(n, len(running))
            # A copy on a paused or retiring worker is about to be dropped or lost.
            for _ in range(wanted - len(ts.who_has & running)):
                yield Suggestion("replicate", ts)

    def _protected_tasks(self, scheduler: Any) -> Iterator[tuple[Any, int | None]]:
        protected = dict(self.protected)
        prefixes = tuple(protected)
        if not prefixes:
            return
        for key, ts in scheduler.tasks.items():
            if isinstance(key, str) and key.startswith(prefixes):
                yield ts, next(n for p, n in protected.items() if key.startswith(p))
