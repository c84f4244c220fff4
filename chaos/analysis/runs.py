"""Checked runs: a history, its verdict, and where it was read from (the unit of analysis)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.history import DEFAULT_REFILL_DELAY, HISTORY_FILE, read_history, replay_command
from chaos.judge import DEFAULT_MODEL, Oracle, OutcomeModel, Verdict, check_history
from chaos.workload import Workload

History = Sequence[Mapping[str, Any]]
# Rebuilds a run's oracle from its run-start event (which describes the workload).
OracleFor = Callable[[Mapping[str, Any]], Oracle]


def workload_oracle(run_start: Mapping[str, Any]) -> Oracle:
    """The oracle of a run of the harness's synthetic workload (`chaos.workload.synthetic`),
    rebuilt from the `workload` its run-start recorded. The default `OracleFor`.
    """
    return Workload.from_dict(run_start["workload"]).oracle()


@dataclass(frozen=True)
class CheckedRun:
    """One run's history with the checker's verdict on it.

    `source` is the run's folder when it was read from disk; reproduction commands
    name its schedule.json.
    """

    history: tuple[Mapping[str, Any], ...]
    verdict: Verdict
    source: Path | None = None

    @property
    def run_id(self) -> str:
        return self.verdict.run_id

    @property
    def run_start(self) -> Mapping[str, Any]:
        return self.history[0]

    @property
    def replay_command(self) -> str:
        """Replays this run on a cluster of as many workers, with the same time bound."""
        folder = self.source if self.source is not None else Path(self.run_id)
        workers = self.run_start.get("workers")
        return replay_command(folder, workers=len(workers) if workers else None,
                              timeout=self.run_start.get("timeout"),
                              refill_delay=self.run_start.get("refill_delay",
                                                              DEFAULT_REFILL_DELAY))


def check_runs(
    histories: Iterable[History],
    oracle_for: OracleFor = workload_oracle,
    *,
    model: OutcomeModel = DEFAULT_MODEL,
    sources: Sequence[Path | None] | None = None,
) -> list[CheckedRun]:
    """Check each history against the oracle `oracle_for` rebuilds from its run-start."""
    frozen = [tuple(history) for history in histories]
    sources = list(sources) if sources is not None else [None] * len(frozen)
    if len(sources) != len(frozen):
        raise ValueError(
            f"{len(sources)} sources for {len(frozen)} histories; give one source "
            "folder (or None) per history."
        )
    runs = [
        CheckedRun(history, check_history(history, oracle_for(history[0]), model=model), source)
        for history, source in zip(frozen, sources, strict=True)
    ]
    _require_distinct_run_ids(runs)
    return runs


def load_runs(
    folder: str | os.PathLike[str],
    oracle_for: OracleFor = workload_oracle,
    *,
    model: OutcomeModel = DEFAULT_MODEL,
) -> list[CheckedRun]:
    """Every run under `folder` (each `history.jsonl`, at any depth), checked, in path order."""
    root = Path(folder)
    files = sorted(root.rglob(HISTORY_FILE))
    if not files:
        raise FileNotFoundError(
            f"no {HISTORY_FILE} under {root}; point at a campaign folder (or a run folder) "
            "written by `python -m chaos run --out DIR` or `nox -s chaos`."
        )
    return check_runs(
        (read_history(file) for file in files), oracle_for, model=model,
        sources=[file.parent for file in files],
    )


def _require_distinct_run_ids(runs: Sequence[CheckedRun]) -> None:
    seen: dict[str, CheckedRun] = {}
    for run in runs:
        if run.run_id in seen:
            first = seen[run.run_id]
            raise ValueError(
                f"run_id {run.run_id!r} names two runs ({first.source or first.verdict.label} "
                f"and {run.source or run.verdict.label}); tables join on run_id, so every "
                "run of a campaign needs its own. Give each run-start a distinct run_id."
            )
        seen[run.run_id] = run
