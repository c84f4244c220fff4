"""summary.json of one run: its recipe, its faults, the delivery counts and the verdict.

A pure function of the run's history (everything it needs is in run-start and run-end),
so a saved run can be summarised again, and `python -m chaos replay` reads the recipe
(target, configuration, workload) back from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from chaos.analysis.runs import OracleFor, workload_oracle
from chaos.judge import check_history


def summarise_run(history: Sequence[Mapping[str, Any]], replay: str, *,
                  history_path: str | os.PathLike[str] | None = None,
                  oracle_for: OracleFor = workload_oracle) -> dict[str, Any]:
    """The summary.json of one run (JSON-ready). The checker judges it; a history it
    cannot judge raises (a run is never called valid without a verdict)."""
    start = history[0]
    end = history[-1] if history[-1]["type"] == "run-end" else {}
    verdict = check_history(history, oracle_for(start))
    faults = [
        {"fault_id": e["fault_id"], "kind": e["kind"], "worker": e["worker"],
         "trigger": e["trigger"], "fired_at": e["fired_at"], "landed_at": e["landed_at"],
         "noticed_at": e["noticed_at"], "error": e.get("error")}
        for e in history if e["type"] == "fault"
    ]
    skipped = [{"fault_id": e["fault_id"], "kind": e["kind"], "reason": e["reason"]}
               for e in history if e["type"] == "fault-skipped"]
    status = str(end.get("status", "cut-short"))
    d = verdict.deliveries
    return {
        "run_id": start.get("run_id"),
        "target": start.get("target"),
        "config": start.get("config"),
        "seed": start.get("seed"),
        "workload": start.get("workload"),
        "status": status,
        "error": end.get("error"),
        "makespan": round(float(end.get("makespan") or 0.0), 4),
        "faults_injected": len(faults),
        "faults_skipped": len(skipped),
        "faults": faults,
        "skipped": skipped,
        "expected": d.expected, "delivered": d.delivered, "lost": d.lost,
        "duplicated": d.duplicated, "unexpected": d.unexpected, "corrupted": d.corrupted,
        "reported_failed": d.reported_failed,
        "valid": verdict.valid and status in ("completed", "failed"),
        "verdict": {"outcome": verdict.outcome, "expected": verdict.expected.explain(),
                    "violations": len(verdict.violations)},
        "history": None if history_path is None else str(history_path),
        "replay": replay,
    }
