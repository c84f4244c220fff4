"""A scheduler plugin that has Dask rank submissions first in, first out.

Dask ranks each submission by a *generation*: a submission less than `fifo_timeout`
(100 ms by default) after the one that began the current generation joins it, and of a
worker's tasks of one generation the one it received last runs first. Which tasks
share a generation is thus a matter of milliseconds, and so is the order in which a
worker runs them. A lockstep replay keeps to its original's order of events, not to its
clock: in every replay of one nightly run a worker ran t2's second step before t3's
first, and the original had run them the other way round.

With this plugin every submission begins a generation of its own, as `fifo_timeout=0`
on every submit would (a setting Dask's API offers): tasks rank in the order they were
submitted, which a replay keeps.
"""

from __future__ import annotations

import math
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

FIFO_PLUGIN_NAME = "chaos-fifo"


class SubmissionOrder(SchedulerPlugin):
    """After each graph update, lets the next one begin a generation of its own."""

    name = FIFO_PLUGIN_NAME

    async def start(self, scheduler: Any) -> None:
        self._begin_next_generation(scheduler)

    def update_graph(self, scheduler: Any, **kwargs: Any) -> None:
        self._begin_next_generation(scheduler)

    @staticmethod
    def _begin_next_generation(scheduler: Any) -> None:
        # Scheduler._set_priorities begins a generation when _last_time + fifo_timeout
        # is before the update's start: always, from -inf.
        scheduler._last_time = -math.inf
