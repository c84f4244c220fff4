"""A run's probe plan: what worker-side probes report, where they hold, on which topic.

Plain data, built by the harness from a schedule and shipped to the workers inside
each probed protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaos.spec import ProbePoint, TaskId

DEFAULT_TOPIC = "chaos"


@dataclass(frozen=True)
class ArmedPoint:
    """A probe point where fault `fault_id` may fire: hold there and ask the harness.

    `task_id` None means any task (an `nth` trigger, which the harness resolves).
    """

    fault_id: str
    step: int
    point: ProbePoint
    fraction: float
    task_id: TaskId | None


@dataclass(frozen=True)
class ProbePlan:
    """What the probes of one run report, where they hold, and on which topic."""

    run_id: str
    armed: tuple[ArmedPoint, ...] = ()
    report_fractions: tuple[float, ...] = (0.5,)
    hold_timeout: float = 10.0
    topic: str = DEFAULT_TOPIC
    # For probes that run outside any Dask worker (PyRosettaCluster runs protocols in a
    # subprocess of the worker): they report through a client of this scheduler.
    scheduler: str | None = None
    # A lockstep replay (chaos.harness.lockstep): results finish in this order, kept on
    # this board (a folder the workers share), each waiting at most `turn_patience` s.
    result_order: tuple[tuple[Any, ...], ...] = ()
    turn_board: str | None = None
    turn_patience: float = 0.5
    # The results the original's kills cut short, each with its kill's entry in the order;
    # the results done before the client took the one before them.
    cut_short: tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...] = ()
    # The results the original's nanny closes cut short, each with its close's entry.
    closed_short: tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...] = ()
    # The results done on a graceful shutdown's victim as it shut down, each with its
    # fault's entry: they wait until their worker stops running.
    after_shutdown: tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...] = ()
    close_behind: tuple[tuple[Any, ...], ...] = ()
    # Of those, the ones whose one before the client took: they wait until the scheduler
    # holds it.
    behind_taken: tuple[tuple[Any, ...], ...] = ()
    # The results held until the submissions their worker started next had reached it.
    queued_behind: tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...] = ()

    def stops(self, step: int, task_id: TaskId | None) -> tuple[float, ...]:
        """The progress fractions at which a protocol of this step should call progress()."""
        armed = {a.fraction for a in self.armed
                 if a.point == "progress" and a.step == step and a.task_id in (None, task_id)}
        return tuple(sorted({f for f in self.report_fractions if 0.0 < f < 1.0} | armed))
