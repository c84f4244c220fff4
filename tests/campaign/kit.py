"""What the campaign's tests share: the workload, the grid, and how a failure is kept.

A failing example's run folder (history.jsonl, schedule.json, summary.json) is copied
to `build/failures/<name>/`, which outlives the test's temporary files, and the
assertion message carries the schedule as JSON and the one-line command that replays
it. Hypothesis re-runs the shrunk example last, so the folder ends up holding it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from chaos import ChaosCluster, Configuration, FaultSchedule, SavedRun, Workload, run_and_save
from chaos.campaign import RUN_TIMEOUT, build_grid
from chaos.harness import Target, make_target
from chaos.history import replay_command

# The CLI's default workload shape (8 tasks x 2 steps of 50 ms, 100 KB payloads), so a
# schedule pinned from `python -m chaos run --seed N` means the same faults here.
WORKLOAD = Workload()
FAILURES = Path("build") / "failures"

# The library's 15 valid configurations (scatter=False with replicas != 0 is refused).
RESILIENCE_GRID = build_grid(["resilience"]).configurations


def run_judged(schedule: FaultSchedule, configuration: Configuration, cluster: ChaosCluster,
               name: str, target_factory: Callable[[str], Target] = make_target) -> SavedRun:
    """Run one schedule, judge it; on a violation keep the run and fail with its recipe."""
    scratch = Path(tempfile.mkdtemp(prefix="chaos-property-"))
    try:
        saved = run_and_save(schedule, configuration, WORKLOAD, cluster, scratch / "run",
                             timeout=RUN_TIMEOUT, target_factory=target_factory)
        if saved.verdict.valid:
            return saved
        kept = keep_failure(saved, name)
        raise AssertionError(failure_message(saved, kept, schedule))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def keep_failure(saved: SavedRun, name: str) -> Path:
    """Copy the run's folder to build/failures/<name>/, its summary.json pointing there."""
    target = FAILURES / name
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(saved.folder, target)
    summary_file = target / "summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    summary.update(history=str(target / "history.jsonl"), replay=replay_of(saved, target))
    summary_file.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return target


def replay_of(saved: SavedRun, folder: Path) -> str:
    workers = len(saved.record.history[0].get("workers") or ()) or None
    return replay_command(folder, workers=workers, timeout=RUN_TIMEOUT)


def failure_message(saved: SavedRun, kept: Path, schedule: FaultSchedule) -> str:
    evidence = "\n".join(f"  {v.kind} {v.task_id} {v.index}: {v.detail} (seq {list(v.seqs)[:8]})"
                         for v in saved.verdict.violations[:8])
    return (
        f"{saved.verdict.summary()}\n{evidence}\n"
        f"schedule:\n{schedule.to_json()}\n"
        f"kept in {kept}; reproduce with:\n"
        f"  {replay_of(saved, kept)}"
    )
