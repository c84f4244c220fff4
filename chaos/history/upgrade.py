"""Reading older histories: each format version's renames, applied on read.

Version 2 renamed the fault kind `sigterm` to `nanny-close` (it asked the nanny to
close; no signal was sent) and added the kinds `preempt` and `scheduler-kill`. A
version-1 history reads as version 2 with the kind renamed in its `fault` and
`fault-skipped` events and in the schedule that `run-start` recorded; the file on disk is
never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chaos.errors import HistoryError
from chaos.history.format import HISTORY_VERSION, READABLE_HISTORY_VERSIONS
from chaos.spec import current_kind


def history_version(events: Iterable[Mapping[str, Any]]) -> int:
    """The format version `run-start.versions.history` names (the current one if none)."""
    first = next(iter(events), None)
    version = ((first or {}).get("versions") or {}).get("history", HISTORY_VERSION)
    if version not in READABLE_HISTORY_VERSIONS:
        raise HistoryError(
            f"the history is in format version {version!r} (run-start.versions.history), "
            f"but this checker reads versions {READABLE_HISTORY_VERSIONS}; fields may have "
            "been renamed. Update chaos.judge.checker to the new docs/history.md, or check "
            "it with the version of the project that wrote it."
        )
    return int(version)


def upgraded(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The events as the current format names them (the same objects when current)."""
    history = list(events)
    version = history_version(history)
    if version == HISTORY_VERSION:
        return history
    return [_upgrade(event, version) for event in history]


def _upgrade(event: Mapping[str, Any], version: int) -> Mapping[str, Any]:
    kind = event.get("type")
    if kind in ("fault", "fault-skipped"):
        return {**event, "kind": current_kind(event.get("kind"), version)}
    if kind == "run-start" and isinstance(event.get("schedule"), dict):
        schedule = dict(event["schedule"])
        if isinstance(schedule.get("faults"), list):  # else not a FaultSchedule: as it is
            schedule["faults"] = [{**f, "kind": current_kind(f.get("kind"), version)}
                                  if isinstance(f, dict) else f for f in schedule["faults"]]
        versions = {**(event.get("versions") or {}), "history": HISTORY_VERSION,
                    "read-from": version}
        return {**event, "schedule": schedule, "versions": versions}
    return event
