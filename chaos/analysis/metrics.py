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
    """Per configuration: median makespan of runs with faults over that of fault-free
    runs, - 1 (a ratio of medians: one slow run cannot swing it, as it swung a mean of
    four fault-free runs to -80 % in issue 11's nightly campaign).

    `runs` is `reports.tables.run_table`. Fault-free runs are those with no fault
    scheduled (a scheduled fault that never fired may still have held a task back), or
    with none injected when the schedule is unknown. Hung runs are left out (their
    makespan is the time bound, not the work).

    The interval is a percentile bootstrap of the ratio of medians when both groups have
    MIN_FOR_INTERVAL runs or more; none otherwise (the method column says why); NaN with
    no fault-free run.
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


ESTIMATOR = "ratio of medians"
MIN_FOR_INTERVAL = 3  # runs per group below which a bootstrap interval means little


def _overhead_interval(
    faulty: np.ndarray, clean: np.ndarray, confidence: float, resamples: int, seed: int
) -> dict[str, float | str]:
    if clean.size == 0 or faulty.size == 0:
        why = "no fault-free run" if clean.size == 0 else "no run with faults"
        return {"overhead": np.nan, "low": np.nan, "high": np.nan, "method": why}
    point = float(np.median(faulty) / np.median(clean) - 1)
    if min(faulty.size, clean.size) < MIN_FOR_INTERVAL or np.ptp(
            np.concatenate([faulty, clean])) == 0:
        return {"overhead": point, "low": np.nan, "high": np.nan,
                "method": f"{ESTIMATOR}; no interval (fewer than {MIN_FOR_INTERVAL} runs "
                          "in a group)"}

    def ratio_of_medians(f: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.median(f, axis=axis) / np.median(c, axis=axis) - 1)

    result = stats.bootstrap(
        (faulty, clean), ratio_of_medians, n_resamples=resamples,
        confidence_level=confidence, method="percentile", vectorized=True, **_seeded(seed),
    )
    interval = result.confidence_interval
    return {"overhead": point, "low": interval.low, "high": interval.high,
            "method": f"{ESTIMATOR}, bootstrap percentile interval"}


def _seeded(seed: int) -> dict[str, Any]:
    # scipy >= 1.15 takes `rng`; older releases (the project allows 1.10) `random_state`.
    generator = np.random.default_rng(seed)
    if "rng" in inspect.signature(stats.bootstrap).parameters:
        return {"rng": generator}
    return {"random_state": generator}
