"""Reading a history back: the one reader the checker, the analysis and the report share."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

from chaos.errors import HistoryError
from chaos.history.format import HISTORY_FILE
from chaos.history.upgrade import upgraded


def read_history(path: str | os.PathLike[str]) -> tuple[dict[str, Any], ...]:
    """The events of one history file, or of `DIR/history.jsonl` when given a folder.

    An older format version is read as the current one (`chaos.history.upgrade`).
    A run killed mid-write may leave a torn last line: it is dropped (the history then
    has no run-end, so the checker calls the run cut short). A bad line elsewhere raises
    `HistoryError` naming it.
    """
    file = Path(path)
    if file.is_dir():
        file = file / HISTORY_FILE
    if not file.is_file():
        raise HistoryError(
            f"no history at {file}; pass a history.jsonl file or the run folder holding one "
            "(`python -m chaos run --out DIR` writes DIR/history.jsonl)."
        )
    lines = file.read_text(encoding="utf-8").splitlines()
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break  # a torn final write: the run was cut short
            raise HistoryError(
                f"{file}:{number} is not JSON ({error}); each line must be one event "
                "object (docs/history.md). Fix or truncate the file at that line."
            ) from None
        events.append(event)
    # upgraded() gives back dicts: the same objects, or renamed copies of them.
    return tuple(cast("list[dict[str, Any]]", upgraded(events))) if events else ()
