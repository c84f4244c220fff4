"""Reading a study file: TOML into `experiments.study.Study`, checked key by key.

Every failure is a StudyError naming the file, the key, the rule and the fix. The
`[quick]` table, when asked for, is merged over the rest before anything is read.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from experiments.durations import Duration
from experiments.errors import StudyError
from experiments.study import (
    AXES,
    LIBRARY_SETTINGS,
    KindShare,
    Objective,
    PreemptionModel,
    SimulationSettings,
    Study,
)
from experiments.units import seconds, size_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the chaos extra installs tomli there
    import tomli as tomllib

_TOP_KEYS = {"name", "description", "mode", "seed", "repetitions", "run_timeout",
             "calibration_from", "workload", "settings", "axes", "preemption", "objective",
             "simulation", "quick"}
_DEFAULT_SETTINGS: dict[str, Any] = {"max_task_replicas": 0, "task_registry": None,
                                     "max_attempts": 5, "scatter": True, "step_timeout": None,
                                     "worker_wait_timeout": None}


def builtin_studies() -> dict[str, Path]:
    """The studies shipped in experiments/studies/, by name."""
    folder = resources.files("experiments") / "studies"
    return {Path(str(entry)).stem: Path(str(entry)) for entry in folder.iterdir()
            if str(entry).endswith(".toml")}


def load_study(name_or_path: str | Path, *, quick: bool = False) -> Study:
    """A built-in study by name, or a study file by path; StudyError says what is wrong."""
    builtins = builtin_studies()
    path = Path(name_or_path)
    if str(name_or_path) in builtins:
        path = builtins[str(name_or_path)]
    elif not path.is_file():
        raise StudyError(f"no study named {str(name_or_path)!r}: use one of "
                         f"{', '.join(sorted(builtins))} (python -m experiments list), or the "
                         "path of a .toml study file.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise StudyError(f"{path}: not valid TOML ({error}).") from None
    return parse_study(data, source=str(path), quick=quick)


def parse_study(data: Mapping[str, Any], *, source: str = "<study>", quick: bool = False
                ) -> Study:
    """A Study from the TOML's tables; `quick` merges the [quick] table over the rest."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise StudyError(f"{source}: unknown key(s) {sorted(unknown)}; a study has "
                         f"{', '.join(sorted(_TOP_KEYS))}.")
    if quick:
        data = _merged(data, _table(data, "quick", source))
    reader = _Reader(source)
    mode = reader.choice(data, "mode", ("real", "simulation"), "real")
    preemption = _preemption(_table(data, "preemption", source), reader, mode)
    workload = _table(data, "workload", source)
    settings = _table(data, "settings", source)
    base = _base(workload, settings, reader)
    axes = _axes(_table(data, "axes", source), reader)
    swept = {name for name, _ in axes}
    chain = workload.get("chain_duration")
    if chain is not None and ("step_duration" in workload or "step_duration" in swept):
        raise StudyError(f"{source}: workload has both chain_duration and step_duration; "
                         "give one (chain_duration is split evenly over the steps).")
    study = Study(
        name=reader.text(data, "name", None),
        description=reader.text(data, "description", ""),
        mode=mode,  # type: ignore[arg-type]
        seed=reader.integer(data, "seed", 0, minimum=0),
        repetitions=reader.integer(data, "repetitions", 3, minimum=1),
        run_timeout=seconds(data.get("run_timeout", 60), where=f"{source}: run_timeout"),
        preemption=preemption,
        objective=_objective(_table(data, "objective", source), reader),
        simulation=_simulation(_table(data, "simulation", source), reader),
        axes=axes,
        base=base,
        fanout=_fanout(workload.get("fanout", 1), reader),
        chain_duration=None if chain is None else seconds(chain, where=f"{source}: "
                                                          "workload.chain_duration"),
        calibration_from=data.get("calibration_from"),
        source=source, quick=quick, raw=dict(data),
    )
    if mode == "simulation" and not study.calibration_from:
        raise StudyError(f"{source}: a simulation-only study needs calibration_from = "
                         "\"<a real study's name>\": the simulator extrapolates only from "
                         "constants measured, and validated, by real runs.")
    study.cells()  # every cell must be buildable: errors now, not mid-study
    return study


class _Reader:
    """Typed reads of one table's keys, each failure naming the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def text(self, table: Mapping[str, Any], key: str, default: str | None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or not value:
            raise StudyError(f"{self.source}: {key} = {value!r}: a non-empty string is needed.")
        return value

    def integer(self, table: Mapping[str, Any], key: str, default: int, *, minimum: int) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise StudyError(f"{self.source}: {key} = {value!r}: an integer >= {minimum}.")
        return value

    def number(self, table: Mapping[str, Any], key: str, default: float, *,
               low: float = 0.0, high: float = math.inf) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                low <= value <= high):
            raise StudyError(f"{self.source}: {key} = {value!r}: a number in [{low:g}, {high:g}].")
        return float(value)

    def choice(self, table: Mapping[str, Any], key: str, allowed: Sequence[str],
               default: str) -> str:
        value = table.get(key, default)
        if value not in allowed:
            raise StudyError(f"{self.source}: {key} = {value!r}: use one of {', '.join(allowed)}.")
        return str(value)

    def axis_value(self, name: str, value: Any) -> Any:
        """One value of an axis (or a fixed setting) in the form the runner uses."""
        where = f"{self.source}: {name}"
        if name == "max_task_replicas":
            if value == "all":
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StudyError(f"{where} = {value!r}: an int >= 0, or \"all\" (every worker).")
            return value
        if name == "task_registry":
            if value in ("none", None):
                return None
            if value not in ("memory", "disk"):
                raise StudyError(f"{where} = {value!r}: use \"none\", \"memory\" or \"disk\".")
            return value
        if name == "scatter":
            if not isinstance(value, bool):
                raise StudyError(f"{where} = {value!r}: true or false.")
            return value
        if name in ("step_timeout", "worker_wait_timeout"):
            return None if value in ("none", None) else seconds(value, where=where)
        if name == "step_duration":
            return Duration.parse(value, where=where)
        if name == "payload_bytes":
            return size_bytes(value, where=where)
        minimum = 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise StudyError(f"{where} = {value!r}: an integer >= {minimum}.")
        return value


def _table(data: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise StudyError(f"{source}: [{key}] must be a table, not {value!r}.")
    return dict(value)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _base(workload: Mapping[str, Any], settings: Mapping[str, Any], reader: _Reader
          ) -> dict[str, Any]:
    known_workload = {"workers", "tasks", "steps", "fanout", "payload_bytes", "step_duration",
                      "chain_duration"}
    for table, known, name in ((workload, known_workload, "workload"),
                               (settings, set(LIBRARY_SETTINGS), "settings")):
        unknown = set(table) - known
        if unknown:
            raise StudyError(f"{reader.source}: [{name}] has unknown key(s) {sorted(unknown)}; "
                             f"known: {', '.join(sorted(known))}.")
    base = dict(_DEFAULT_SETTINGS)
    base.update({name: reader.axis_value(name, value) for name, value in settings.items()})
    defaults = {"workers": 3, "tasks": 8, "steps": 2, "payload_bytes": 100_000,
                "step_duration": "1min"}
    for name, default in defaults.items():
        base[name] = reader.axis_value(name, workload.get(name, default))
    return base


def _axes(table: Mapping[str, Any], reader: _Reader) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    axes = []
    for name, values in table.items():
        if name not in AXES:
            raise StudyError(f"{reader.source}: axes.{name} is not a known axis; sweep any of "
                             f"{', '.join(AXES)} (rates go in [preemption] rates).")
        if not isinstance(values, list) or not values:
            raise StudyError(f"{reader.source}: axes.{name} = {values!r}: a non-empty list.")
        parsed = tuple(reader.axis_value(name, value) for value in values)
        if len(set(map(repr, parsed))) != len(parsed):
            raise StudyError(f"{reader.source}: axes.{name} = {values!r} repeats a value.")
        axes.append((name, parsed))
    return tuple(axes)


def _fanout(value: Any, reader: _Reader) -> int | tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, list) and value and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        return tuple(value)
    raise StudyError(f"{reader.source}: workload.fanout = {value!r}: an int >= 1 (decoys per "
                     "step), or a list with one such int per step.")


def _preemption(table: Mapping[str, Any], reader: _Reader, mode: str) -> PreemptionModel:
    rates = table.get("rates")
    if not isinstance(rates, list) or not rates or any(
            isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0 for r in rates):
        raise StudyError(f"{reader.source}: preemption.rates = {rates!r}: a non-empty list of "
                         "preemptions per worker-hour, each >= 0 (include 0 as the reference).")
    default_compression = 3600.0 if mode == "simulation" else None
    if "seconds_per_hour" not in table and default_compression is None:
        raise StudyError(f"{reader.source}: preemption.seconds_per_hour is missing: say how "
                         "many real seconds stand for one hour in the real runs (e.g. 1.2).")
    per_hour = reader.number(table, "seconds_per_hour", default_compression or 3600.0,
                             low=1e-3, high=3600.0)
    kinds = table.get("kinds", [{"kind": "sudden", "weight": 1.0}])
    if not isinstance(kinds, list) or not kinds:
        raise StudyError(f"{reader.source}: preemption.kinds must be a list of tables such as "
                         "{kind = \"sudden\", weight = 0.5}.")
    mix = []
    for position, entry in enumerate(kinds):
        where = f"preemption.kinds[{position}]"
        if not isinstance(entry, Mapping) or entry.get("kind") not in ("sudden", "notice"):
            raise StudyError(f"{reader.source}: {where} = {entry!r}: kind is \"sudden\" (SIGKILL) "
                             "or \"notice\" (SIGTERM, then SIGKILL after `notice`).")
        unknown = set(entry) - {"kind", "weight", "notice"}
        if unknown:
            raise StudyError(f"{reader.source}: {where} has unknown key(s) {sorted(unknown)}.")
        if entry["kind"] == "notice" and "notice" not in entry:
            raise StudyError(f"{reader.source}: {where} is a preemption with notice but gives no "
                             "notice; add e.g. notice = \"120s\" (AWS spot) or \"30s\" (GCP, "
                             "Azure, SLURM KillWait).")
        if entry["kind"] == "sudden" and "notice" in entry:
            raise StudyError(f"{reader.source}: {where}: a sudden kill has no notice; drop it "
                             "or use kind = \"notice\".")
        weight = reader.number(entry, "weight", 1.0, low=0.0)
        notice = seconds(entry.get("notice", 0), where=f"{reader.source}: {where}.notice")
        mix.append(KindShare(entry["kind"], weight, notice))
    total = sum(share.weight for share in mix)
    if total <= 0:
        raise StudyError(f"{reader.source}: preemption.kinds weights add up to 0; give one > 0.")
    mix = [KindShare(s.kind, s.weight / total, s.notice) for s in mix]
    unknown = set(table) - {"rates", "seconds_per_hour", "kinds"}
    if unknown:
        raise StudyError(f"{reader.source}: [preemption] has unknown key(s) {sorted(unknown)}.")
    return PreemptionModel(tuple(float(r) for r in rates), per_hour, tuple(mix))


def _objective(table: Mapping[str, Any], reader: _Reader) -> Objective:
    unknown = set(table) - {"minimize", "max_failure_probability", "max_memory_per_worker",
                            "tie_tolerance"}
    if unknown:
        raise StudyError(f"{reader.source}: [objective] has unknown key(s) {sorted(unknown)}.")
    reader.choice(table, "minimize", ("makespan",), "makespan")
    memory = table.get("max_memory_per_worker")
    return Objective(
        max_failure_probability=reader.number(table, "max_failure_probability", 0.001,
                                              high=1.0),
        max_memory_per_worker=None if memory is None else size_bytes(
            memory, where=f"{reader.source}: objective.max_memory_per_worker"),
        tie_tolerance=reader.number(table, "tie_tolerance", 0.05, high=1.0),
    )


def _simulation(table: Mapping[str, Any], reader: _Reader) -> SimulationSettings:
    unknown = set(table) - {"repetitions", "max_median_relative_error", "replacement"}
    if unknown:
        raise StudyError(f"{reader.source}: [simulation] has unknown key(s) {sorted(unknown)}.")
    replacement = table.get("replacement", {"sudden": "3min", "notice": "3min"})
    if not isinstance(replacement, Mapping) or set(replacement) - {"sudden", "notice"}:
        raise StudyError(f"{reader.source}: simulation.replacement = {replacement!r}: a table "
                         "{sudden = \"3min\", notice = \"3min\"} (model time to replace a worker).")
    delays = tuple((kind, seconds(replacement.get(kind, "3min"),
                                  where=f"{reader.source}: simulation.replacement.{kind}"))
                   for kind in ("sudden", "notice"))
    return SimulationSettings(
        repetitions=reader.integer(table, "repetitions", 200, minimum=1),
        max_median_relative_error=reader.number(table, "max_median_relative_error", 0.25,
                                                high=10.0),
        replacement=delays,  # type: ignore[arg-type]
    )


