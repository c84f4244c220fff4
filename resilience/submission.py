"""Handing one step's attempts to Dask: inputs placed, keys named, options set."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from distributed import Client, Future

from resilience.config import ResilienceConfig
from resilience.registry import INITIAL_INPUT
from resilience.replication import InputPlacement, holders_of
from resilience.watch import AttemptWatch
from resilience.worker_step import StepCall


class StepSubmitter:
    """Submits batches of step attempts for one run.

    The run's shared step-0 input is placed once, on every worker, and placed again
    only when the cluster lost it, or when only frozen workers still hold it.
    """

    def __init__(self, client: Client, config: ResilienceConfig, run_id: str,
                 protocols: Sequence[Callable[..., Any]], retries: Sequence[int],
                 initial_input: Any, watch: AttemptWatch | None) -> None:
        self._client = client
        self._config = config
        self._run_id = run_id
        self._retries = list(retries)
        self._initial_input = initial_input
        self._watch = watch
        start_topic = None if watch is None else watch.topic
        self._calls = [StepCall(protocol, step, start_topic)
                       for step, protocol in enumerate(protocols)]
        self._placement = InputPlacement(client, config, run_id)
        self._initial_future: Future[Any] | None = None

    @property
    def steps(self) -> int:
        return len(self._calls)

    def start(self) -> None:
        self._placement.start()

    def submit(self, step: int,
               attempts: Sequence[tuple[str, Any, Any]]) -> tuple[list[Future[Any]], list[Any]]:
        """Submit (key, payload, kwargs) attempts of `step`. Returns one future per attempt,
        and its placed input (a Future when scattered), both in order.

        Hold the placed input until the attempt's result is fetched: a result lost with
        its worker is recomputed from it, which only works while someone wants it.
        Raises whatever placement raises (e.g. no worker to scatter to): nothing was
        submitted then, and the caller tries again later.
        """
        healthy = None if self._watch is None else self._watch.healthy_workers()
        placed = self._place([payload for _, payload, _ in attempts], healthy)
        futures = list(self._client.map(
            self._calls[step],
            placed,
            [kwargs for _, _, kwargs in attempts],
            key=[key for key, _, _ in attempts],
            retries=self._retries[step] or None,
            # Later steps first: a chain runs depth-first, as Dask runs a graph of
            # dependencies, so outputs come out (and inputs are let go) as early as
            # they can, and a step after a loss does not queue behind every new task.
            priority=step,
            pure=False,
            workers=healthy,
            allow_other_workers=healthy is not None,
        ))
        return futures, placed

    def lacking_copies(self, placed: Sequence[Any]) -> list[bool]:
        """Which of `submit`'s placed inputs hold fewer copies than asked."""
        return self._placement.lacking_copies(placed)

    def reconnected(self) -> None:
        """After a lost scheduler: the initial input's future is gone with it."""
        self._initial_future = None
        self._placement.reconnected()

    def close(self) -> None:
        self._initial_future = None
        self._placement.close()

    def _place(self, payloads: list[Any], workers: list[str] | None) -> list[Any]:
        own = [i for i, payload in enumerate(payloads) if payload is not INITIAL_INPUT]
        placed = list(payloads)
        placements = self._placement.place([payloads[i] for i in own], workers)
        for i, value in zip(own, placements, strict=True):
            placed[i] = value
        if len(own) < len(payloads):
            initial = self._initial(workers)
            placed = [initial if payload is INITIAL_INPUT else value
                      for payload, value in zip(payloads, placed, strict=True)]
        return placed

    def _initial(self, workers: list[str] | None) -> Any:
        if not self._config.scatter:
            return self._initial_input
        future = self._initial_future
        if future is None or future.status != "finished" or self._held_only_by_suspects(future):
            self._initial_future = self._placement.place_shared(self._initial_input, workers)
        return self._initial_future

    def _held_only_by_suspects(self, future: Future[Any]) -> bool:
        """A copy on a frozen worker cannot be fetched: it does not count."""
        if self._watch is None or not self._watch.suspects:
            return False
        holders = set(holders_of(self._client, [future]).get(future.key, ()))
        return holders <= self._watch.suspects
