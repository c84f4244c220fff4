"""Finding attempts that will not complete by themselves.

The run loop asks, while its run is not moving, which attempts need it to act; it then
decides what to do with each (the recovery policy's resubmission, or a failure):

- `past_timeout`: steps that ran past `step_timeout`, or wait queued behind a worker
  that stopped answering;
- `forgotten`: attempts whose futures wait on keys the scheduler has forgotten (a rare
  race when a worker dies: Dask will never resolve such futures);
- `on_phantom_inputs`: attempts waiting on an input the scheduler wrongly says their
  worker holds (a Dask race when a worker comes back at a dead one's address);
- `settled`: attempts whose futures settled while their completion never reached the
  loop (Dask runs every done-callback of a process on one thread: a callback of the
  user's that blocks it holds up ours too).
"""

from __future__ import annotations

import time
from collections.abc import Container
from typing import Any

from distributed import Client, Future

from resilience.jobs import Job, JobBook
from resilience.phantom import find_phantom_inputs
from resilience.watch import AttemptWatch, find_forgotten


class StalledAttempts:
    """The stalled attempts of one run's `JobBook`."""

    def __init__(self, client: Client, book: JobBook, watch: AttemptWatch | None,
                 inputs_kept: bool, every: float) -> None:
        self._client = client
        self._book = book
        self._watch = watch
        # Steps queued on a silent worker can be moved only when a registry keeps their
        # inputs: without one, the input is on that worker, and there is nothing to move.
        self._may_move_queued = inputs_kept
        self._every = every
        self._next_check = 0.0

    def past_timeout(self) -> list[Job]:
        """The unfinished jobs with an attempt past step_timeout, or queued behind a
        silent worker; each attempt is reported once. Looked at every `every` seconds."""
        now = time.monotonic()
        if self._watch is None or now < self._next_check:
            return []
        self._next_check = now + self._every
        book = self._book
        stuck, behind = self._watch.stuck(k for k in book.by_key if k not in book.given_up)
        if not self._may_move_queued or (behind and self._watch.healthy_workers() is None):
            # Not started, so their time has not begun. Moved only where they can run
            # sooner: with every worker suspect, a move queues them behind a stuck
            # attempt again, and each check would burn another of their attempts.
            behind = set()
        book.given_up |= stuck | behind
        jobs = dict.fromkeys(book.by_key[key] for key in stuck | behind)
        return [job for job in jobs if not job.done]

    def forgotten(self, cutoff: float, every: bool) -> list[tuple[Job, str]]:
        """(job, attempt key) of the attempts submitted before `cutoff` whose keys the
        scheduler has forgotten while their futures wait: pending, or "lost" (a result
        that died with its worker, being computed again), which Dask resolves no more
        than a pending one then (`every` such attempt after a reconnection: the client
        has cancelled every future, so all are lost)."""
        book = self._book
        old = [key for key, at in book.submitted_at.items() if at < cutoff]
        found = []
        for key in find_forgotten(self._client, old):
            job = book.by_key.get(key)
            if job is not None and (every or job.live[key].status in ("pending", "lost")):
                found.append((job, key))
        return found

    def on_phantom_inputs(self, cutoff: float) -> list[tuple[Job, str]]:
        """(job, attempt key) of the attempts submitted before `cutoff` that wait on an
        input their worker is said to hold and does not (`resilience.phantom`). Asked of
        every such attempt, not only the pending: one whose result died with its worker
        before the run took it is "lost" to the client, and computed again."""
        book = self._book
        old = [key for key, at in book.submitted_at.items() if at < cutoff]
        return [(book.by_key[key], key) for key in find_phantom_inputs(self._client, old)
                if key in book.by_key]

    def settled(self, fetching: Container[str]) -> list[Future[Any]]:
        """The live attempts already finished, errored or cancelled (not being fetched)."""
        return [future for key, job in self._book.by_key.items()
                if key not in fetching
                and (future := job.live[key]).status in ("finished", "error", "cancelled")]
