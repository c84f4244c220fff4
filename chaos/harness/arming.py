"""The probe plan of a run: the points where its schedule's logical triggers may fire,
and, in a lockstep replay, the board its results keep their order on."""

from __future__ import annotations

from typing import Any

from chaos.harness.lockstep import Lockstep
from chaos.probes import ArmedPoint, ProbePlan
from chaos.probes.turns import fault_entry
from chaos.spec import AtStep, FaultSchedule, InputHeld, ResultReady


def probe_plan(schedule: FaultSchedule, run_id: str, *,
               report_fractions: tuple[float, ...] = (0.5,), hold_timeout: float = 10.0,
               topic: str = "chaos", scheduler: str | None = None,
               lockstep: Lockstep | None = None) -> ProbePlan:
    """The probe plan of a run: where the schedule's logical triggers may fire (in a
    lockstep replay, not a fault its original never fired)."""
    armed = []
    unfired = {} if lockstep is None else lockstep.order.unfired
    for fault_id, fault in schedule.items():
        trigger = fault.trigger
        if isinstance(trigger, (AtStep, ResultReady, InputHeld)) and fault_id not in unfired:
            armed.append(ArmedPoint(fault_id, trigger.step, trigger.point, float(trigger.fraction),
                                    trigger.task))
    turns: dict[str, Any] = {} if lockstep is None or lockstep.board is None else {
        "result_order": lockstep.order.results, "turn_board": lockstep.board,
        "turn_patience": lockstep.patience,
        "cut_short": tuple((result, fault_entry(fault_id)) for result, fault_id
                           in lockstep.order.death_races.cut_short.items()),
        "closed_short": tuple((result, fault_entry(fault_id)) for result, fault_id
                              in lockstep.order.death_races.closed_short.items()),
        "after_shutdown": tuple((result, fault_entry(fault_id)) for result, fault_id
                                in lockstep.order.death_races.after_shutdown.items()),
        "close_behind": lockstep.order.close_behind,
        "behind_taken": lockstep.order.behind_taken,
        "queued_behind": lockstep.order.queued_behind}
    return ProbePlan(run_id, tuple(armed), report_fractions, hold_timeout, topic, scheduler,
                     **turns)
