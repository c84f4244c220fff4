"""Replay determinism is measured on signatures: outcome, violations by class, and where
each fault fired; a replay that injected fewer faults, or lost a different number of
outputs, does not match."""

from __future__ import annotations

import json
from pathlib import Path

from chaos import AtStep, Fault, FaultSchedule
from chaos.campaign.execute import run_and_save
from chaos.campaign.grid import Configuration
from chaos.campaign.replays import (
    ReplayReport,
    RunReplays,
    failing_run_folders,
    replay_runs,
    signature,
)
from chaos.harness import TargetConfig
from chaos.history import read_history, watched_tasks
from chaos.judge import check_history
from chaos.workload import Workload
from tests.checker.histories import HistoryBuilder, one_output_each


def events(faults: int, lost: int, struck: str = "t0") -> list[dict]:
    history = HistoryBuilder("dask-raw", workers=3)
    for n in range(faults):
        history.emit("fault", fault_id=f"f{n}", kind="sigkill",
                     trigger={"type": "at-step", "step": 1, "nth": 1, "task_id": struck,
                              "fraction": 0.5, "point": "progress"},
                     worker=history.workers[n], pid=100 + n,
                     fired_at=history.clock, landed_at=history.clock, noticed_at=history.clock)
    tasks = [f"t{i}" for i in range(3)]
    for task in tasks[lost:]:
        history.clean_task(task)
    history.end()
    return history.events


def run(faults: int, lost: int, struck: str = "t0") -> tuple:
    history = events(faults, lost, struck)
    return signature(history, check_history(history, one_output_each("t0", "t1", "t2")))


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


def test_a_replay_must_strike_the_task_the_original_struck():
    # "The first task to start" is t0 in the original and t1 in this replay: the same
    # schedule, but not the same fault point.
    assert run(faults=1, lost=1, struck="t1") != run(faults=1, lost=1, struck="t0")


def test_replays_pin_each_nth_trigger_to_the_task_it_struck_in_the_original():
    original = events(faults=2, lost=1, struck="t2")
    schedule = FaultSchedule((Fault("sigkill", AtStep(step=1, nth=1, fraction=0.5)),) * 3)
    pinned = schedule.pinned(watched_tasks(original))
    assert [fault.trigger.task for fault in pinned.faults] == ["t2", "t2", None]  # f2 never fired


def test_the_failing_runs_of_a_campaign_folder_are_its_runs_not_their_saved_replays(tmp_path):
    # A campaign run with --replays keeps its replays' runs under replays/: replaying the
    # folder again replayed those too (175 runs for a nightly's 25 failing ones).
    for run in ("runs/s000-dask-raw", "runs/s001-dask-raw", "replays/s000-dask-raw/0"):
        folder = tmp_path / run
        folder.mkdir(parents=True)
        for name in ("schedule.json", "history.jsonl"):
            (folder / name).write_text("{}")
        valid = run == "runs/s001-dask-raw"
        (folder / "summary.json").write_text(json.dumps({"valid": valid}))
    assert failing_run_folders(tmp_path) == [tmp_path / "runs/s000-dask-raw"]
    assert len(failing_run_folders(tmp_path / "replays")) == 1  # any folder of runs


def test_replay_runs_keep_in_lockstep_with_the_original_unless_told_not_to(harness, tmp_path):
    workload = Workload(n_tasks=3, n_steps=1, payload_bytes=1_000, step_seconds=0.02, seed=1)
    configuration = Configuration("dask-raw", TargetConfig())
    saved = run_and_save(FaultSchedule((), seed=0), configuration, workload, harness,
                         tmp_path / "original", timeout=60)
    for lockstep in (True, False):
        report = replay_runs([saved.folder], harness, 1, tmp_path / str(lockstep),
                             lockstep=lockstep)
        assert report.share == 1.0
        replayed = read_history(tmp_path / str(lockstep) / "original" / "0")
        assert replayed[0]["lockstep"] is lockstep
