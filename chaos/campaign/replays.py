"""Replay determinism: run saved failing runs again, N times each, and count the matches.

A failure is worth something only if it reproduces. `replay_runs` replays each saved run
(its schedule.json, with the target, configuration and workload its summary.json
recorded, each "n-th task to start" pinned to the task it was in the original)
`times` times on one cluster, and compares each replay's *signature* with the
original's: the verdict's outcome, its violations by class (with counts), and where
each fault fired (`RunRecord.fault_points`: fault id, kind, trigger, watched task, step,
fraction, point). The share of replays whose signature matches is what
`python -m chaos replays DIR` prints and the campaign report shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.campaign.execute import TargetFactory, run_and_save
from chaos.campaign.grid import Configuration
from chaos.errors import ChaosError
from chaos.harness import ChaosCluster, RefillPolicy, TargetConfig, make_target
from chaos.history import (
    DEFAULT_REFILL_DELAY,
    HISTORY_FILE,
    RUN_SUMMARY_FILE,
    SCHEDULE_FILE,
    read_history,
    watched_tasks,
)
from chaos.judge import Verdict, check_history
from chaos.spec import FaultSchedule
from chaos.workload import Workload

REPLAYS_FILE = "replays.json"
Signature = tuple[str, tuple[tuple[str, int], ...], tuple[tuple[Any, ...], ...]]


@dataclass(frozen=True)
class RunReplays:
    """One saved run and its replays: the original signature and each replay's."""

    folder: Path
    original: Signature
    replays: tuple[Signature, ...]

    @property
    def matches(self) -> int:
        return sum(replay == self.original for replay in self.replays)

    @property
    def same_outcome(self) -> int:
        return sum(replay[0] == self.original[0] for replay in self.replays)

    @property
    def same_classes(self) -> int:
        """Replays with the same outcome, violation classes and fault points (the counts
        of a class may differ: how many other tasks' inputs a killed worker held depends
        on Dask's placement, which no schedule fixes)."""
        return sum(_classes(replay) == _classes(self.original) for replay in self.replays)

    def describe(self) -> str:
        """One line: how many replays matched, and how close the others came."""
        return (f"{self.folder.name}: {self.matches}/{len(self.replays)} replays match"
                + ("" if self.matches == len(self.replays) else
                   f" (same classes and fault points {self.same_classes}, same outcome "
                   f"{self.same_outcome})"))

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.folder.name, "replays": len(self.replays), "matches": self.matches,
                "same_outcome": self.same_outcome, "same_classes": self.same_classes,
                "original": _jsonable(self.original),
                "differing": [_jsonable(r) for r in self.replays if r != self.original]}


@dataclass(frozen=True)
class ReplayReport:
    runs: tuple[RunReplays, ...]

    @property
    def replays(self) -> int:
        return sum(len(run.replays) for run in self.runs)

    @property
    def share(self) -> float | None:
        """Share of replays whose signature matched their original's (None: no replay)."""
        return sum(run.matches for run in self.runs) / self.replays if self.replays else None

    def to_dict(self) -> dict[str, Any]:
        return {"runs": len(self.runs), "replays": self.replays, "share": self.share,
                "same_outcome_share": (sum(r.same_outcome for r in self.runs) / self.replays
                                       if self.replays else None),
                "same_classes_share": (sum(r.same_classes for r in self.runs) / self.replays
                                       if self.replays else None),
                "per_run": [run.to_dict() for run in self.runs]}

    def render(self) -> str:
        lines = [run.describe() for run in self.runs]
        share = "n/a" if self.share is None else f"{self.share:.0%}"
        classes = sum(r.same_classes for r in self.runs)
        lines.append(f"{sum(r.matches for r in self.runs)} of {self.replays} replays of "
                     f"{len(self.runs)} runs match their original exactly ({share}); "
                     f"{classes} with the same violation classes and fault points")
        return "\n".join(lines)


def signature(history: Sequence[Mapping[str, Any]], verdict: Verdict) -> Signature:
    """What a replay must reproduce: outcome, violations by class, fault points."""
    kinds = tuple(sorted((kind, len(items)) for kind, items in verdict.by_kind().items()
                         if items))
    points = []
    for event in sorted((e for e in history if e["type"] == "fault"),
                        key=lambda e: str(e["fault_id"])):
        trigger = event.get("trigger") or {}
        # The task the trigger struck: an `nth` resolved at run time, or the one named.
        watched = trigger.get("task_id", trigger.get("task"))
        points.append((event["fault_id"], event["kind"], trigger.get("type"), watched,
                       trigger.get("step"), trigger.get("fraction"), trigger.get("point")))
    return (verdict.outcome, kinds, tuple(points))


def failing_run_folders(folder: str | os.PathLike[str]) -> list[Path]:
    """Saved runs under `folder` (at any depth) whose summary.json says not valid; of a
    campaign folder, its runs/ only (its replays/ holds the replays `--replays` saved)."""
    root = Path(folder)
    if (root / "runs").is_dir():
        root = root / "runs"
    found = []
    for summary in sorted(root.rglob(RUN_SUMMARY_FILE)):
        run = summary.parent
        if not (run / SCHEDULE_FILE).is_file() or not (run / HISTORY_FILE).is_file():
            continue
        if not json.loads(summary.read_text(encoding="utf-8")).get("valid", True):
            found.append(run)
    return found


def replay_runs(folders: Sequence[Path], cluster: ChaosCluster, times: int, out: Path, *,
                target_factory: TargetFactory = make_target,
                refill: RefillPolicy | None = None,
                on_run: Callable[[RunReplays], None] | None = None,
                lockstep: bool = True) -> ReplayReport:
    """Replay each saved run `times` times on `cluster` (into `out/<run>/<i>/`), with
    `refill` or else the refill delay the run was recorded with; in `lockstep` with the
    original's order of events (`chaos.harness.lockstep`), unless told otherwise.
    `on_run` is told each run's replays as soon as they are done."""
    if times < 1:
        raise ChaosError(f"--times {times}: replay each run at least once.")
    results = []
    for folder in folders:
        history = read_history(folder / HISTORY_FILE)
        start = history[0]
        workload = Workload.from_dict(start["workload"])
        original = signature(history, check_history(history, workload.oracle()))
        configuration = Configuration(str(start["target"]),
                                      TargetConfig.from_dict(start.get("config") or {}))
        schedule = FaultSchedule.load(folder / SCHEDULE_FILE).pinned(watched_tasks(history))
        replays = []
        for attempt in range(times):
            saved = run_and_save(schedule, configuration, workload, cluster,
                                 out / folder.name / str(attempt),
                                 timeout=float(start.get("timeout") or 60.0),
                                 target_factory=target_factory,
                                 refill=refill or RefillPolicy(
                                     start.get("refill_delay", DEFAULT_REFILL_DELAY)),
                                 replay_of=history if lockstep else None)
            replays.append(signature(saved.record.history, saved.verdict))
        results.append(RunReplays(folder, original, tuple(replays)))
        if on_run is not None:
            on_run(results[-1])
    return ReplayReport(tuple(results))


def _classes(sig: Signature) -> tuple[Any, ...]:
    return (sig[0], tuple(kind for kind, _ in sig[1]), sig[2])


def _jsonable(sig: Signature) -> dict[str, Any]:
    return {"outcome": sig[0], "violations": dict(sig[1]), "faults": [list(p) for p in sig[2]]}
