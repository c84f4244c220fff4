"""The simulator's constants, measured from the real runs' histories.

Each constant is the median (or, for recovery latencies, which have long tails, the
mean) of one latency the histories record (a fault landing and
the replacement worker joining, a step error and its resubmission, a parent step
completing and its child being submitted...), with the number of samples behind it.
Placement is measured per (copies, registry) at rate 0, and also turned into per-byte
costs so that another payload size can be priced. One constant is fitted rather than
read: `steal_after`, how long a step queued behind a busy worker waits before Dask
moves it, chosen among a few values so the simulated fault-free makespans match the
measured ones. Nothing measured at a preemption rate > 0 is fitted, so validation
at those rates is a test of the model, not of a fit.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from experiments.costs import PlacementCosts, RunCosts
from experiments.errors import CalibrationError
from experiments.study import Cell

CALIBRATION_FILE = "calibration.json"
# Latencies of recovery have long tails (a scatter to a worker that just died waits for
# its timeout); the simulator predicts a mean makespan, so these are priced at their
# mean. The others are steady, and their median ignores a stray slow sample.
_MEAN_OF = frozenset({"detection", "resubmit", "reschedule", "restart", "notice_leave"})
STEAL_CANDIDATES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0)
# Used only when the runs had no event to measure a constant from; the report says so.
_FALLBACK = {"detection": 0.02, "resubmit": 0.1, "reschedule": 0.05, "restart": 0.4,
             "notice_leave": 0.05, "return_latency": 0.01, "dispatch": 0.005,
             "exec_overhead": 0.002, "startup": 0.05, "end_gap": 0.01}


@dataclass(frozen=True)
class MeasuredRun:
    """One real run as the calibration sees it: its cell, seed, history and durations."""

    cell: Cell
    seed: int
    history: Sequence[Mapping[str, Any]]
    duration_of: Callable[[Any, int, tuple[int, ...]], float]


@dataclass(frozen=True)
class Calibration:
    constants: Mapping[str, float]  # RunCosts fields but placement and steal_after
    samples: Mapping[str, int]  # how many measurements each constant rests on
    placement_by_setting: Mapping[str, float]  # "copies|registry|payload" -> seconds
    placement: PlacementCosts
    steal_after: float
    source: str  # the study folder it was measured in

    def costs_for(self, cell: Cell) -> RunCosts:
        copies = effective_copies(cell)
        registry = cell.settings["task_registry"]
        key = placement_key(copies, registry, cell.payload_bytes)
        placement = self.placement_by_setting.get(
            key, self.placement.seconds(cell.payload_bytes, copies, registry))
        return RunCosts(placement=placement, steal_after=self.steal_after,
                        **{name: self.constants[name] for name in _FALLBACK})

    def with_steal_after(self, value: float) -> Calibration:
        return Calibration(self.constants, self.samples, self.placement_by_setting,
                           self.placement, value, self.source)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["placement"]["registry_per_byte"] = dict(self.placement.registry_per_byte)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        placement = dict(data["placement"])
        placement["registry_per_byte"] = tuple(placement["registry_per_byte"].items())
        return cls(dict(data["constants"]), dict(data["samples"]),
                   dict(data["placement_by_setting"]), PlacementCosts(**placement),
                   float(data["steal_after"]), str(data["source"]))

    def save(self, folder: Path) -> Path:
        path = folder / CALIBRATION_FILE
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path) -> Calibration:
        path = folder / CALIBRATION_FILE
        if not path.is_file():
            raise CalibrationError(f"no {CALIBRATION_FILE} in {folder}; run the real study "
                                   "there first (python -m experiments run NAME --out DIR).")
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


def effective_copies(cell: Cell) -> int:
    """Holders of each step input: replicate(n=1) makes no copy; None is every worker."""
    replicas = cell.settings["max_task_replicas"]
    if replicas is None:
        return cell.workers
    return max(1, int(replicas))


def placement_key(copies: int, registry: str | None, payload_bytes: int) -> str:
    return f"{copies}|{registry or 'none'}|{payload_bytes}"


def calibrate(runs: Sequence[MeasuredRun], source: str) -> Calibration:
    """Measure every constant from `runs` (steal_after is fitted separately: `fit_steal`)."""
    if not runs:
        raise CalibrationError("no measured runs to calibrate from; the study ran none.")
    found: dict[str, list[float]] = defaultdict(list)
    placements: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        _measure_run(run, found, placements)
    constants, samples = {}, {}
    for name, fallback in _FALLBACK.items():
        values = found.get(name, [])
        average = statistics.fmean if name in _MEAN_OF else statistics.median
        constants[name] = average(values) if values else fallback
        samples[name] = len(values)
    by_setting = {key: statistics.median(values) for key, values in placements.items()}
    return Calibration(constants, samples, by_setting, _per_byte(by_setting), 0.0, source)


def _measure_run(run: MeasuredRun, found: dict[str, list[float]],
                 placements: dict[str, list[float]]) -> None:
    history = run.history
    start = history[0]["time"]
    end = next((e for e in history if e["type"] == "run-end"), None)
    submits = [e for e in history if e["type"] == "submit"]
    if not submits:
        return
    found["startup"].append(submits[0]["time"] - start)
    client = [e["time"] for e in history if e["type"] in ("deliver", "task-failed")]
    if end is not None and end["status"] in ("completed", "failed") and client:
        found["end_gap"].append(max(0.0, start + end["makespan"] - max(client)))
    first_submit: dict[str, float] = {}
    for event in submits:
        first_submit.setdefault(event["key"], event["time"])
    completed = {e["key"]: e for e in history if e["type"] == "step-completed"}
    completed_job = {(e["task_id"], tuple(e["index"]), e["step"]): e["time"]
                     for e in completed.values()}
    invokes: dict[str, Mapping[str, Any]] = {}
    ok: dict[str, Mapping[str, Any]] = {}
    for event in history:
        if event["type"] == "invoke":
            invokes.setdefault(event["execution"], event)
        elif event["type"] == "ok":
            ok[event["execution"]] = event
    dispatches = []
    for execution, invoke in invokes.items():
        key = invoke.get("key")
        if key in first_submit:
            dispatches.append(invoke["time"] - first_submit[key])
        done = ok.get(execution)
        if done is None:
            continue
        drawn = run.duration_of(invoke["task_id"], invoke["step"], tuple(invoke["index"]))
        found["exec_overhead"].append(max(0.0, done["time"] - invoke["time"] - drawn))
        if key in completed:
            found["return_latency"].append(max(0.0, completed[key]["time"] - done["time"]))
    if dispatches:
        found["dispatch"].append(_quantile(dispatches, 0.1))
    if run.cell.rate == 0:
        key = placement_key(effective_copies(run.cell), run.cell.settings["task_registry"],
                            run.cell.payload_bytes)
        for event in submits:
            if event["reason"] == "new" and event["step"] > 0:
                parent = (event["task_id"], tuple(event["index"][:-1]), event["step"] - 1)
                if parent in completed_job:
                    placements[key].append(event["time"] - completed_job[parent])
    _measure_faults(history, found)


def _measure_faults(history: Sequence[Mapping[str, Any]], found: dict[str, list[float]]) -> None:
    faults = [e for e in history if e["type"] == "fault" and e.get("noticed_at")]
    added = sorted(e["time"] for e in history if e["type"] == "worker-added")
    for fault in faults:
        if fault["kind"] in ("sigkill", "exit", "segfault", "preempt") and fault.get("landed_at"):
            later = [t for t in added if t > fault["landed_at"]]
            if later and later[0] - fault["landed_at"] < 10:
                found["restart"].append(later[0] - fault["landed_at"])
        if fault["kind"] in ("sigterm", "nanny-close", "retire"):
            found["notice_leave"].append(max(0.0, fault["noticed_at"] - fault["fired_at"]))
    notices = sorted(f["noticed_at"] for f in faults)
    last_error: dict[tuple[Any, ...], float] = {}
    invoked_keys: dict[str, list[float]] = defaultdict(list)
    for event in history:
        if event["type"] == "invoke" and event.get("key"):
            invoked_keys[event["key"]].append(event["time"])
        if event["type"] == "step-error" and event["cause"] in ("lost-input", "killed-worker"):
            before = [t for t in notices if t <= event["time"]]
            if before and event["time"] - before[-1] < 5:
                found["detection"].append(event["time"] - before[-1])
            last_error[(event["task_id"], tuple(event["index"]), event["step"])] = event["time"]
        if event["type"] == "submit" and event["reason"] in ("lost-input", "killed-worker"):
            job = (event["task_id"], tuple(event["index"]), event["step"])
            if job in last_error:
                found["resubmit"].append(event["time"] - last_error.pop(job))
    for times in invoked_keys.values():  # the same key invoked again: Dask reran it
        for again in times[1:]:
            before = [t for t in notices if t <= again]
            if before and again - before[-1] < 5:
                found["reschedule"].append(again - before[-1])


def _per_byte(by_setting: Mapping[str, float]) -> PlacementCosts:
    """Per-byte costs from the placement table: one copy without registry is all
    scatter; an extra copy, or a registry kind, adds its measured difference."""
    if not by_setting:
        return PlacementCosts(0.01, 0.0, 0.0, ())
    parsed = {tuple(key.split("|")): value for key, value in by_setting.items()}
    size = max(int(k[2]) for k in parsed) or 1
    plain = [v for (c, r, b), v in parsed.items() if c == "1" and r == "none"]
    base = statistics.median(plain) if plain else min(parsed.values())
    extra_copies = [(v - base) / ((int(c) - 1) * int(b)) for (c, r, b), v in parsed.items()
                    if r == "none" and int(c) > 1 and int(b) > 0]
    registry = {}
    for kind in ("memory", "disk"):
        diffs = [(v - base) / int(b) for (c, r, b), v in parsed.items()
                 if r == kind and c == "1" and int(b) > 0]
        if diffs:
            registry[kind] = max(0.0, statistics.median(diffs))
    return PlacementCosts(
        base=0.0, scatter_per_byte=base / size,
        replica_per_byte=max(0.0, statistics.median(extra_copies)) if extra_copies else 0.0,
        registry_per_byte=tuple(registry.items()),
    )


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
