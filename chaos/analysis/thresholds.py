"""Gate thresholds: what a campaign is held to, read from `[tool.chaos.gates]`.

Thresholds live in pyproject.toml under `[tool.chaos.gates]` (see there for each one's
meaning); a key left out keeps its default here, and an unknown key or a bad value is a
clear error, never a silent default. `chaos.analysis.gates` checks a summary against them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from chaos.errors import ChaosError


@dataclass(frozen=True)
class GateThresholds:
    """The `[tool.chaos.gates]` table, with these defaults for keys it leaves out."""

    max_must_deliver_violations: int = 0
    max_silent_loss: int = 0
    max_exactly_once_violations: int = 0
    max_hung_runs: int = 0
    max_inconclusive_share: float = 0.1
    max_unexplained_failures: int = 0
    min_baseline_silent_loss_runs: int = 1
    max_makespan_overhead: float = 4.0
    max_fault_free_overhead: float = 1.0
    max_typical_fault_free_overhead: float = 0.5
    max_recovery_seconds: float = 15.0
    max_isolated_recovery_p99: float = 1.0
    isolated_recovery_vs_baseline: float = 2.5
    min_aimed_coverage: float = 0.9
    max_scheduler_recovery_seconds: float = 15.0
    regression_tolerance: float = 0.5
    baseline_targets: tuple[str, ...] = ("dask-raw",)
    informational_targets: tuple[str, ...] = ("pyrosettacluster", "prc630")
    source: str = "built-in defaults"

    def role(self, target: str) -> Literal["system", "baseline", "informational"]:
        if target in self.baseline_targets:
            return "baseline"
        if target in self.informational_targets:
            return "informational"
        return "system"

    @classmethod
    def from_table(cls, table: Mapping[str, Any], source: str) -> GateThresholds:
        known = {f.name: f for f in fields(cls) if f.name != "source"}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ChaosError(
                f"{source}: [tool.chaos.gates] has unknown key(s) {unknown}; the gates are "
                f"{', '.join(known)}."
            )
        values: dict[str, Any] = {}
        for name, value in table.items():
            default = getattr(cls, name)
            if isinstance(default, tuple):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ChaosError(f"{source}: {name} = {value!r} must be a list of "
                                     "target names, e.g. [\"dask-raw\"].")
                values[name] = tuple(value)
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    isinstance(default, int) and not isinstance(value, int)) or value < 0:
                kind = "an int" if isinstance(default, int) else "a number"
                raise ChaosError(f"{source}: {name} = {value!r} must be {kind} >= 0.")
            else:
                values[name] = value
        return cls(**values, source=source)


def load_gate_thresholds(path: str | os.PathLike[str] | None = None) -> GateThresholds:
    """Thresholds from `path` (a pyproject.toml), or from the nearest pyproject.toml at or
    above the current directory that has `[tool.chaos.gates]`; defaults when none has."""
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ChaosError(f"--gates {file}: no such file; pass a pyproject.toml with a "
                             "[tool.chaos.gates] table.")
        table = _gates_table(file)
        if table is None:
            raise ChaosError(f"{file} has no [tool.chaos.gates] table; add one (see this "
                             "project's pyproject.toml) or leave --gates out for defaults.")
        return GateThresholds.from_table(table, str(file))
    for folder in (Path.cwd(), *Path.cwd().parents):
        file = folder / "pyproject.toml"
        if file.is_file():
            table = _gates_table(file)
            if table is not None:
                return GateThresholds.from_table(table, str(file))
    return GateThresholds()


def _gates_table(file: Path) -> dict[str, Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 reads TOML with tomli (the chaos extra)
        import tomli as tomllib
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ChaosError(f"{file} is not valid TOML ({error}); fix it to read the gates.") from None
    table = data.get("tool", {}).get("chaos", {}).get("gates")
    return table if isinstance(table, dict) else None
