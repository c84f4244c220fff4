"""The fault-free overhead figure the gate reads: medians of fault-free runs, so one run
slowed by a busy host does not fail a campaign."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.analysis import summarise_campaign
from chaos.judge import Verdict, check_history
from tests.checker.histories import HistoryBuilder, one_output_each


@dataclass(frozen=True)
class FaultFreeRun:
    run_id: str
    slug: str
    target: str
    makespan: float
    history: list[dict[str, Any]] = field(default_factory=list)
    verdict: Verdict | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    clean: bool = True
    folder: Path | None = None


def fault_free(target: str, makespan: float, number: int) -> FaultFreeRun:
    run_id = f"c{number:03d}-{target}"
    history = HistoryBuilder(target, run_id=run_id)
    history.clean_task("a")
    history.wait(makespan)
    history.end()
    verdict = check_history(history.events, one_output_each("a"))
    return FaultFreeRun(run_id, target, target, makespan, history.events, verdict)


def test_one_slow_fault_free_run_does_not_move_the_fault_free_overhead():
    runs = [fault_free("dask-raw", seconds, i) for i, seconds in enumerate((0.40, 0.42, 0.41))]
    # One run of three slowed twentyfold (a busy host, a cold worker): the mean would
    # say +700%, the median says +5%.
    runs += [fault_free("resilience", seconds, i) for i, seconds in enumerate((0.43, 9.0, 0.42))]
    summary = summarise_campaign(runs, {"profile": "test"})
    figure = summary["configurations"]["resilience"]["fault_free_vs_baseline"]
    assert abs(figure - (0.43 / 0.41 - 1)) < 1e-3, figure
