"""Statistics for the report: empirical CDFs, and makespan overhead with confidence intervals."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

OVERHEAD_COLUMNS = [
    "label", "faulty_runs", "clean_runs", "overhead", "low", "high", "method",
]


def ecdf(values: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted finite values and the fraction of *all* values at or below each.

    NaN means "never happened" and stays in the denominator, so the curve stops below 1
    by the share that never recovered, instead of hiding it.
    """
    array = np.asarray(list(values), dtype=float)
    finite = np.sort(array[np.isfinite(array)])
    if array.size == 0:
        return finite, finite
    return finite, np.arange(1, finite.size + 1) / array.size


def makespan_overhead(
    runs: pd.DataFrame,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per configuration: mean makespan of runs with faults over that of fault-free runs, - 1.

    `runs` is `reports.tables.run_table`. Fault-free runs are those with no fault
    scheduled (a scheduled fault that never fired may still have held a task back), or
    with none injected when the schedule is unknown. Hung runs are left out (their
    makespan is the time bound, not the work).

    The interval is a percentile bootstrap of the ratio of means when both groups have
    two runs or more; a t interval over the faulty runs when there is one fault-free
    run; none with a single faulty run; NaN with no fault-free run.
    """
    rows = []
    finished = runs[runs["outcome"] != "hung"]
    for label, group in finished.groupby("label", sort=False):
        scheduled = group.get("scheduled_faults", pd.Series(np.nan, index=group.index))
        is_clean = (group["faults"] == 0) & (scheduled.fillna(0) == 0)
        faulty = group.loc[group["faults"] > 0, "makespan"].to_numpy(dtype=float)
        clean = group.loc[is_clean, "makespan"].to_numpy(dtype=float)
        rows.append({
            "label": label, "faulty_runs": faulty.size, "clean_runs": clean.size,
            **_overhead_interval(faulty, clean, confidence, resamples, seed),
        })
    return pd.DataFrame(rows, columns=OVERHEAD_COLUMNS)


def _overhead_interval(
    faulty: np.ndarray, clean: np.ndarray, confidence: float, resamples: int, seed: int
) -> dict[str, float | str]:
    if clean.size == 0 or faulty.size == 0:
        why = "no fault-free run" if clean.size == 0 else "no run with faults"
        return {"overhead": np.nan, "low": np.nan, "high": np.nan, "method": why}
    point = faulty.mean() / clean.mean() - 1
    if faulty.size == 1:
        return {"overhead": point, "low": np.nan, "high": np.nan, "method": "one run"}
    if clean.size == 1 or np.ptp(np.concatenate([faulty, clean])) == 0:
        per_run = faulty / clean.mean() - 1
        low, high = stats.t.interval(
            confidence, per_run.size - 1, loc=per_run.mean(), scale=stats.sem(per_run)
        ) if np.ptp(per_run) > 0 else (point, point)
        return {"overhead": point, "low": low, "high": high, "method": "t"}

    def ratio_of_means(f: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.mean(f, axis=axis) / np.mean(c, axis=axis) - 1)

    result = stats.bootstrap(
        (faulty, clean), ratio_of_means, n_resamples=resamples, confidence_level=confidence,
        method="percentile", vectorized=True, **_seeded(seed),
    )
    interval = result.confidence_interval
    return {"overhead": point, "low": interval.low, "high": interval.high, "method": "bootstrap"}


def _seeded(seed: int) -> dict[str, Any]:
    # scipy >= 1.15 takes `rng`; older releases (the project allows 1.10) `random_state`.
    generator = np.random.default_rng(seed)
    if "rng" in inspect.signature(stats.bootstrap).parameters:
        return {"rng": generator}
    return {"random_state": generator}
