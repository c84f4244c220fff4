"""The live progress display: one rewritten line on a terminal, periodic lines elsewhere."""

from __future__ import annotations

import io

from chaos import CampaignProgress, Configuration, FaultSchedule, RunSpec
from chaos.campaign import CampaignRun
from tests.checker.histories import HistoryBuilder, oracle_for


def a_run(number: int, lost: bool) -> CampaignRun:
    from chaos import check_history

    history = HistoryBuilder(task_registry=None, max_task_replicas=0)
    history.fault(worker=0)
    if not lost:
        history.deliver("t0", (0,))
    history.end("completed")
    verdict = check_history(history.events, oracle_for([("t0", (0,))]))
    spec = RunSpec(Configuration("dask-raw"), FaultSchedule(), number)
    return CampaignRun(spec, tuple(history.events), verdict, None, 1.0, 1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_in_a_log_it_prints_every_interval_and_every_failure():
    stream, clock = io.StringIO(), Clock()
    progress = CampaignProgress(4, stream=stream, interval=10, live=False, clock=clock)
    clock.now = 1
    progress.advance(a_run(0, lost=False))  # quiet: not due yet
    clock.now = 2
    progress.advance(a_run(1, lost=True))  # a failure is printed at once
    clock.now = 20
    progress.advance(a_run(2, lost=False))  # due
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[2/4 runs] 1 failing (lost 1) | 0:02 elapsed, ~0:02 left")
    assert lines[1] == "  FAILED s001-dask-raw-scatter: invalid (lost 1)"
    assert lines[2].startswith("[3/4 runs] 1 failing (lost 1) | 0:20 elapsed, ~0:07 left")
    assert lines[3] == "3/4 runs in 0:20, 1 failing"


def test_on_a_terminal_it_rewrites_one_line():
    stream, clock = io.StringIO(), Clock()
    progress = CampaignProgress(2, stream=stream, live=True, clock=clock)
    progress.advance(a_run(0, lost=False))
    progress.advance(a_run(1, lost=False))
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.count("\n") == 2  # the line, then the total
    assert "[2/2 runs] 0 failing" in text
