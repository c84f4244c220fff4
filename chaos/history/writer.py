"""The history writer: one append-only JSON-lines file per run (format: docs/history.md).

Events come from three threads (the target's driver, the client's event loop that
receives worker probes, the fault coordinator), so `emit` is locked and numbers every
event with `seq` in the order the harness observed it. Each line is flushed as it is
written: a run that is cut short still leaves the history so far.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


class HistoryWriter:
    """Numbers, timestamps and appends events; keeps them in memory too."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._closed = False
        self._file: IO[str] | None = None
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        # Replaced, never changed in place: emit reads it without the lock.
        self._gates: tuple[Callable[[str, dict[str, Any]], None], ...] = ()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")

    def emit(self, type: str, /, **fields: Any) -> dict[str, Any] | None:
        """Append one event; `time` defaults to now. Returns it, or None once closed."""
        for gate in self._gates:  # before the event is timed: it may hold the emitting thread
            gate(type, fields)
        with self._lock:
            if self._closed:
                return None
            event = {"seq": len(self._events), "time": fields.pop("time", None) or time.time(),
                     "type": type, **fields}
            line = json.dumps(event, default=_jsonable)
            self._events.append(json.loads(line))
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
            listeners = list(self._listeners)
        for listener in listeners:  # outside the lock: a listener may emit
            listener(event)
        return event

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener(event)` with every event emitted from now on."""
        with self._lock:
            self._listeners.append(listener)

    def gate(self, gate: Callable[[str, dict[str, Any]], None]) -> None:
        """Call `gate(type, fields)` before each event from now on is numbered and timed:
        it may hold the thread that emits it (a lockstep replay keeps its client there)."""
        with self._lock:
            self._gates = (*self._gates, gate)

    @property
    def events(self) -> tuple[dict[str, Any], ...]:
        with self._lock:
            return tuple(self._events)

    def close(self) -> None:
        """Stop accepting events (late ones from a finished run are dropped) and close."""
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
