"""A simulated campaign, to preview the report and test it at real sizes without a cluster.

`preview_grid(36)` is the library's grid (replicas x registry x scatter, 24 cells, the
inline ones with replicas=0 only, as the library rejects replicas with inline inputs),
then the `pyrosettacluster` and `dask-raw` baselines and max_attempts=1 or 2 variants.
Flaws are planted in some runs so the page has failures to show.
"""

from __future__ import annotations

import itertools
from typing import Any

from chaos.analysis import CheckedRun, check_runs
from reports.synthetic import FLAWS, synthetic_history, synthetic_oracle

Configuration = tuple[str, dict[str, Any]]


def preview_grid(size: int = 3) -> list[Configuration]:
    """`size` configurations (3 or 36 show the two scales the report is designed for)."""
    grid: list[Configuration] = [
        ("dask-raw", _config(0, None, True)),
        ("resilience", _config(2, None, True)),
        ("resilience", _config(0, "disk", True)),
    ]
    for replicas, registry, scatter in itertools.product(
        (0, 1, 2, None), (None, "memory", "disk"), (True, False)
    ):
        if scatter or replicas == 0:
            grid.append(("resilience", _config(replicas, registry, scatter)))
    for replicas, registry in itertools.product((0, 2), (None, "memory", "disk")):
        grid.append(("resilience", _config(replicas, registry, True, max_attempts=2)))
    for replicas, registry, scatter in itertools.product((0, 2, None), (None, "disk"), (True,)):
        grid.append(("pyrosettacluster", _config(replicas, registry, scatter)))
    grid += [("dask-raw", _config(0, None, False)), ("dask-raw", _config(2, None, True)),
             ("dask-raw", _config(None, None, True))]
    for replicas, registry in itertools.product((0, 2, None), ("memory", "disk")):
        grid.append(("resilience", _config(replicas, registry, True, max_attempts=1)))
    unique = list({(target, repr(sorted(config.items()))): (target, config)
                   for target, config in grid}.values())
    if not 1 <= size <= len(unique):
        raise ValueError(f"size={size} must be between 1 and {len(unique)} configurations.")
    return unique[:size]


def preview_runs(size: int = 3, runs_per_configuration: int = 4, seed: int = 0) -> list[CheckedRun]:
    """Simulated, checked runs: per configuration one fault-free run, then runs with 1 to
    3 sigkills; every fourth configuration has a flaw planted in its last run.
    """
    histories = []
    for number, (target, config) in enumerate(preview_grid(size)):
        for run in range(runs_per_configuration):
            flawed = number % 4 == 1 and run == runs_per_configuration - 1
            histories.append(synthetic_history(
                config, target=target, seed=seed + 100 * number + run,
                faults=0 if run == 0 else 1 + run % 3,
                workers=2 + number % 2,
                flaw=FLAWS[number // 4 % len(FLAWS)] if flawed else None,
            ))
    return check_runs(histories, synthetic_oracle)


def _config(replicas: int | None, registry: str | None, scatter: bool,
            max_attempts: int = 5) -> dict[str, Any]:
    return {"max_task_replicas": replicas, "task_registry": registry, "scatter": scatter,
            "max_attempts": max_attempts}
