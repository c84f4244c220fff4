"""The configurations a campaign runs: targets crossed with the library's settings grid.

The full grid of the `resilience` target is

    max_task_replicas in {0, 1, 2, None}  x  task_registry in {None, "memory", "disk"}
                                           x  scatter in {True, False}
    (+ step_timeout and max_attempts, crossed with the registry cells only, and the two
       EXTRA_CELLS by default; + the notice plugin, off unless `notice=` asks for it:
       only the resilience target takes it)

less the cells the library refuses: scatter=False with max_task_replicas != 0 raises
`resilience.ConfigError` (inline inputs live in the scheduler's task graph, where Dask
reschedules them itself, and cannot be replicated). That leaves 4 x 3 scattered
configurations and 3 inline ones: 15, and 2 extra cells: 17. The `dask-raw` baseline
takes no replicas and no registry, and scatters its inputs as PyRosettaCluster does:
one configuration.

    grid = build_grid(["resilience", "dask-raw"], parse_grid("replicas=0,2;registry=disk"))
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.errors import ChaosError, ScheduleError
from chaos.harness import TargetConfig, make_target

Replicas = int | None

REPLICAS: tuple[Replicas, ...] = (0, 1, 2, None)
REGISTRIES: tuple[str | None, ...] = (None, "memory", "disk")
SCATTER: tuple[bool, ...] = (True, False)
AXES = ("replicas", "registry", "scatter", "timeout", "attempts", "notice")
# step_timeout and max_attempts matter only with a registry (without one nothing is
# resubmitted: a timeout fails the task, and attempts are never counted), so the grid
# crosses them with the registry cells only. By default two extra cells cover them: a
# speculative attempt under step_timeout (the only way the library's deduplication is
# put to work) and a small attempt budget that faults may use up.
EXTRA_CELLS: tuple[TargetConfig, ...] = (
    TargetConfig(task_registry="memory", step_timeout=0.5),
    TargetConfig(task_registry="disk", max_attempts=2),
)

# The baseline is what a user writes without resilience: scattered inputs, nothing else.
# Targets not listed here take the whole grid, and refuse what they cannot run (`check`).
FIXED_SETTINGS: Mapping[str, TargetConfig] = {"dask-raw": TargetConfig()}


@dataclass(frozen=True)
class GridAxes:
    """The values of each axis a campaign crosses (default: all of them)."""

    replicas: tuple[Replicas, ...] = REPLICAS
    registries: tuple[str | None, ...] = REGISTRIES
    scatter: tuple[bool, ...] = SCATTER
    step_timeouts: tuple[float | None, ...] = (None,)
    max_attempts: tuple[int, ...] = (5,)
    notices: tuple[float | None, ...] = (None,)  # the notice plugin's seconds; None: off
    extras: tuple[TargetConfig, ...] = EXTRA_CELLS

    def cells(self) -> Iterable[TargetConfig]:
        for replicas, registry, scatter, timeout, attempts, notice in itertools.product(
                self.replicas, self.registries, self.scatter, self.step_timeouts,
                self.max_attempts, self.notices):
            if registry is None and (timeout is not None or attempts != 5):
                continue  # without a registry neither matters (see EXTRA_CELLS)
            yield TargetConfig(max_task_replicas=replicas, task_registry=registry,
                               scatter=scatter, step_timeout=timeout, max_attempts=attempts,
                               notice=notice)
        yield from self.extras

    def describe(self) -> str:
        replicas = ",".join("all" if r is None else str(r) for r in self.replicas)
        registries = ",".join(r or "none" for r in self.registries)
        scatter = ",".join("on" if s else "off" for s in self.scatter)
        timeouts = ",".join("none" if t is None else f"{t:g}" for t in self.step_timeouts)
        attempts = ",".join(map(str, self.max_attempts))
        notices = ",".join("none" if n is None else f"{n:g}" for n in self.notices)
        text = (f"replicas={replicas};registry={registries};scatter={scatter};"
                f"timeout={timeouts};attempts={attempts}")
        text += f";notice={notices}" if self.notices != (None,) else ""
        return text + (f" (+{len(self.extras)} extra cells)" if self.extras else "")


@dataclass(frozen=True)
class Configuration:
    """One target under one setting: a row of the campaign's tables."""

    target: str
    config: TargetConfig = field(default_factory=TargetConfig)

    @property
    def slug(self) -> str:
        """A short name for folders and run ids: 'resilience-r2-disk-scatter'."""
        config = self.config
        replicas = "all" if config.max_task_replicas is None else str(config.max_task_replicas)
        registry = config.task_registry or "none"
        inputs = "scatter" if config.scatter else "inline"
        if self.target in FIXED_SETTINGS:
            return f"{self.target}-{inputs}"
        extras = "".join(
            f"-{name}{value:g}" if isinstance(value, float) else f"-{name}{value}"
            for name, value, default in (("attempts", config.max_attempts, 5),
                                         ("retries", config.retries, None),
                                         ("timeout", config.step_timeout, None),
                                         ("notice", config.notice, None))
            if value != default
        )
        return f"{self.target}-r{replicas}-{registry}-{inputs}{extras}"


@dataclass(frozen=True)
class Grid:
    """The configurations to run, and the cells left out with why."""

    configurations: tuple[Configuration, ...]
    excluded: tuple[str, ...] = ()


def parse_grid(text: str | None) -> GridAxes:
    """Axes from `replicas=0,2,all;registry=none,disk;scatter=on,off;timeout=none,0.5;
    attempts=5,2;notice=none,2` (any axis may be left out: replicas, registry and scatter
    then take all their values, timeout none, attempts 5 and notice none: the notice
    plugin is not installed). An explicit grid has no extra cells.
    Raises ChaosError naming a bad part."""
    if not text or not text.strip():
        return GridAxes()
    values: dict[str, Any] = {}
    for part in text.replace(" ", ";").split(";"):
        if not part.strip():
            continue
        name, _, raw = part.partition("=")
        name = name.strip().lower()
        items = [item.strip().lower() for item in raw.split(",") if item.strip()]
        if name not in AXES or not items:
            raise ChaosError(
                f"--grid part {part!r}: use AXIS=V1,V2 with AXIS one of {', '.join(AXES)}, "
                "e.g. --grid 'replicas=0,2,all;registry=none,disk;scatter=on;timeout=0.5'."
            )
        values[name] = tuple(dict.fromkeys(_axis_value(name, item) for item in items))
    return GridAxes(
        replicas=values.get("replicas", REPLICAS),
        registries=values.get("registry", REGISTRIES),
        scatter=values.get("scatter", SCATTER),
        step_timeouts=values.get("timeout", (None,)),
        max_attempts=values.get("attempts", (5,)),
        notices=values.get("notice", (None,)),
        extras=(),
    )


def build_grid(targets: Sequence[str], axes: GridAxes | None = None) -> Grid:
    """Every valid configuration of every target, in a stable order.

    Unknown or unavailable targets raise TargetUnavailable before anything runs.
    """
    axes = axes or GridAxes()
    if not targets:
        raise ChaosError("no targets to run; pass e.g. --targets resilience,dask-raw.")
    configurations: list[Configuration] = []
    excluded: list[str] = []
    for name in dict.fromkeys(targets):
        target = make_target(name)
        if name in FIXED_SETTINGS:
            configurations.append(Configuration(name, FIXED_SETTINGS[name]))
            continue
        for config in axes.cells():
            configuration = Configuration(name, config)
            try:
                target.check(config)
            except ScheduleError as refusal:
                excluded.append(f"{configuration.slug}: {_first_sentence(str(refusal))}")
                continue
            configurations.append(configuration)
    if not configurations:
        raise ChaosError(
            f"the grid {axes.describe()} leaves no configuration of {', '.join(targets)} to "
            f"run ({'; '.join(excluded)}); widen --grid."
        )
    return Grid(tuple(configurations), tuple(excluded))


def _axis_value(axis: str, text: str) -> Any:
    if axis == "replicas":
        if text in ("all", "none"):
            return None
        if text.isdigit():
            return int(text)
    elif axis == "registry":
        if text in ("none", "memory", "disk"):
            return None if text == "none" else text
    elif axis in ("timeout", "notice"):
        if text in ("none", "off"):
            return None
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if seconds > 0:
            return seconds
    elif axis == "attempts":
        if text.isdigit() and int(text) >= 1:
            return int(text)
    elif text in ("on", "true", "scatter", "yes"):
        return True
    elif text in ("off", "false", "inline", "no"):
        return False
    allowed = {"replicas": "an int >= 0 or 'all'", "registry": "none, memory or disk",
               "scatter": "on or off", "timeout": "none or seconds > 0",
               "attempts": "an int >= 1",
               "notice": "none (the notice plugin off) or its seconds of notice > 0"}[axis]
    raise ChaosError(f"--grid {axis}={text!r}: {axis} takes {allowed}.")


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].rstrip(".")
