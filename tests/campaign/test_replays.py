"""Replay determinism is measured on signatures: outcome, violations by class, and where
each fault fired; a replay that injected fewer faults, or lost a different number of
outputs, does not match."""

from __future__ import annotations

from pathlib import Path

from chaos.campaign.replays import ReplayReport, RunReplays, signature
from chaos.judge import check_history
from tests.checker.histories import HistoryBuilder, one_output_each


def run(faults: int, lost: int) -> tuple:
    history = HistoryBuilder("dask-raw", workers=3)
    for n in range(faults):
        history.emit("fault", fault_id=f"f{n}", kind="sigkill",
                     trigger={"type": "at-step", "step": 1, "task": "t0", "fraction": 0.5,
                              "point": "progress"}, worker=history.workers[n], pid=100 + n,
                     fired_at=history.clock, landed_at=history.clock, noticed_at=history.clock)
    tasks = [f"t{i}" for i in range(3)]
    for task in tasks[lost:]:
        history.clean_task(task)
    history.end()
    return signature(history.events, check_history(history.events, one_output_each(*tasks)))


def test_a_replay_matches_only_with_the_same_faults_and_the_same_violations():
    original = run(faults=2, lost=1)
    replays = RunReplays(Path("s001"), original, (run(2, 1), run(1, 1), run(2, 2)))
    assert replays.matches == 1
    assert replays.same_outcome == 3
    assert replays.same_classes == 2  # the one with one fault fewer differs in its points
    report = ReplayReport((replays,))
    assert report.share == 1 / 3
    assert "1 of 3 replays of 1 runs match their original exactly (33%)" in report.render()
    assert report.to_dict()["per_run"][0]["differing"][0]["faults"]
