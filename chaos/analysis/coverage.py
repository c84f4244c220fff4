"""Coverage: which (fault kind x lifecycle window) cells a campaign hit, per configuration.

A fault's *window* is where in a task's life it struck the victim, read from its `fault`
event (trigger and role) and the history around it:

- `running step k`: the victim was running the watched task's step k;
- `result computed, not fetched`: the step's result existed only on the victim;
- `input holder`: the victim held the step's input and was running it;
- `replica holder`: the victim held a copy of the input while another worker ran it;
- `between steps`: the victim ran nothing at that moment (it may hold results, inputs
  or queued tasks of others: a bystander).

Windows that cannot exist in a configuration are not cells of it: inline inputs have no
holder, and raw Dask keeps no replica (the library keeps its shared input everywhere).
A campaign's coverage is, per configuration, the cells hit at least once out of the
cells that exist; faults that did not land hit nothing. The `ci` profile aims a fault
at every cell (`chaos.campaign.cover`); drawn schedules hit them by chance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chaos.spec import FAULT_KINDS

RESULT_WINDOW = "result computed, not fetched"
INPUT_WINDOW = "input holder"
REPLICA_WINDOW = "replica holder"
HOLDER_WINDOWS = (INPUT_WINDOW, REPLICA_WINDOW)
IDLE_WINDOW = "between steps"


def windows(n_steps: int) -> tuple[str, ...]:
    """Every window of a chain of `n_steps` steps, in a task's order of life."""
    return (*(f"running step {k}" for k in range(n_steps)), RESULT_WINDOW, *HOLDER_WINDOWS,
            IDLE_WINDOW)


def fault_windows(history: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(kind, window) of every fault of the run that landed."""
    invokes = {e["execution"]: e for e in history if e["type"] == "invoke"}
    outcomes = {e.get("execution"): e for e in history if e["type"] in ("ok", "fail", "info")}
    found = []
    for event in history:
        if event["type"] != "fault" or (event.get("landed_at") is None
                                        and event.get("noticed_at") is None):
            continue
        found.append((str(event["kind"]), _window(event, invokes, outcomes)))
    return found


def existing_cells(config: Mapping[str, Any], n_steps: int,
                   kinds: Iterable[str] = FAULT_KINDS,
                   target: str | None = None) -> list[tuple[str, str]]:
    """The (kind, window) cells that can exist in a configuration (of `target`)."""
    absent = set() if config.get("scatter", True) else set(HOLDER_WINDOWS)
    if target == "dask-raw":  # one copy of each input, on the worker that runs its step
        absent.add(REPLICA_WINDOW)
    possible = [w for w in windows(n_steps) if w not in absent]
    return [(kind, window) for kind in kinds for window in possible]


def coverage_summary(histories: Sequence[Sequence[Mapping[str, Any]]],
                     kinds: Sequence[str] = FAULT_KINDS) -> dict[str, Any]:
    """One configuration's coverage over its runs: hits per kind and window, and how many
    of the cells that exist were hit at least once (JSON-ready)."""
    hits: Counter[tuple[str, str]] = Counter()
    for history in histories:
        hits.update(fault_windows(history))
    start = histories[0][0] if histories else {}
    n_steps = int((start.get("workload") or {}).get("n_steps", 2))
    cells = existing_cells(start.get("config") or {}, n_steps, kinds, start.get("target"))
    missing = [cell for cell in cells if not hits[cell]]
    return {
        "hits": {kind: {window: hits[(kind, window)] for window in windows(n_steps)
                        if hits[(kind, window)]} for kind in kinds},
        "cells": len(cells),
        "covered": len(cells) - len(missing),
        "missing": [f"{kind} @ {window}" for kind, window in missing],
    }


def _window(fault: Mapping[str, Any], invokes: Mapping[Any, Mapping[str, Any]],
            outcomes: Mapping[Any, Mapping[str, Any]]) -> str:
    trigger = fault.get("trigger") or {}
    role = (fault.get("target") or {}).get("role")
    victim = fault.get("worker")
    probed = invokes.get(trigger.get("execution"))
    running_on = probed.get("worker") if probed else None
    if trigger.get("type") == "input-held" or role == "replica-holder":
        return INPUT_WINDOW if victim == running_on else REPLICA_WINDOW
    if probed is not None and victim == running_on:
        if trigger.get("type") == "result-ready" or trigger.get("point") == "result":
            return RESULT_WINDOW
        return f"running step {probed['step']}"
    busy = _running_at(victim, float(fault.get("landed_at") or fault["fired_at"]), invokes,
                       outcomes)
    return f"running step {busy['step']}" if busy is not None else IDLE_WINDOW


def _running_at(worker: Any, moment: float, invokes: Mapping[Any, Mapping[str, Any]],
                outcomes: Mapping[Any, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for execution, invoke in invokes.items():
        if invoke.get("worker") != worker or invoke["time"] > moment:
            continue
        outcome = outcomes.get(execution)
        if outcome is None or outcome["time"] >= moment:
            return invoke
    return None
