"""Registry rows: a `StepRecord` or an output's ledger entry as a signed SQLite row, and back.

Every row is signed with a keyed MAC bound to the run and to the record's identity
(task id and lineage), over every column that is read back, and verified before
anything in it is unpickled.
"""

from __future__ import annotations

import functools
import hmac
import json
import pickle
from collections.abc import Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import cloudpickle

from resilience.errors import RegistryError
from resilience.outputs import TaskId
from resilience.registry import INITIAL_INPUT, Delivery, StepRecord
from resilience.signing import Signer

STEP_COLUMNS = ("task_id, idx, step, attempts, options, lineage_attempts, started_at, "
                "payload, kwargs, mac")
SELECT_STEP = f"SELECT {STEP_COLUMNS} FROM steps"
SELECT_OUTPUT = "SELECT task_id, idx, attempts, file, score, committed, mac FROM outputs"


class RowCodec:
    """Signs and encodes rows for one registry file; verifies and decodes them back."""

    def __init__(self, signer: Signer, path: Path) -> None:
        self.signer = signer
        self.path = path  # named in errors

    def output_row(self, entry: Delivery, committed: int) -> tuple[Any, ...]:
        if entry.file is not None and Path(entry.file).name != entry.file:
            raise ValueError(f"an output file must be a plain name, not {entry.file!r}")
        row = (id_text(entry.task_id), index_text(entry.index), entry.attempts, entry.file,
               entry.score, committed)
        return (*row, self._output_mac(*row))

    def _output_mac(self, task_id: str, idx: str, attempts: int, file: str | None,
                    score: str | None, committed: int) -> bytes:
        return self.signer.sign("output", task_id, idx, str(attempts), _nullable(file),
                                _nullable(score), str(committed))

    def verified_output(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """An outputs row (task_id, idx, attempts, file, score, committed), verified."""
        *fields, mac = row
        task_id, idx, _, file, _, _ = fields
        if not hmac.compare_digest(mac, self._output_mac(*fields)) or (
                file is not None and Path(file).name != file):
            raise RegistryError(f"the ledger entry of output {task_id} {idx} in {self.path} "
                                "was altered; nothing was read or deleted on its account.")
        return tuple(fields)

    def step_row(self, record: StepRecord, pickled: dict[int, bytes]) -> tuple[Any, ...]:
        task_id, idx = id_text(record.task_id), index_text(record.index)
        options = _options_text(record.options)
        lineage = index_text(record.lineage_attempts)
        payload = None if record.payload is INITIAL_INPUT else dumps(record.payload,
                                                                     by_value=True)
        kwargs = pickled.get(id(record.kwargs))
        if kwargs is None:
            plain = record.kwargs if type(record.kwargs) is dict else dict(record.kwargs)
            kwargs = pickled[id(record.kwargs)] = dumps(plain)
        mac = self._step_mac(task_id, idx, record.step, options, lineage, record.started_at,
                             payload, kwargs)
        return (task_id, idx, record.step, record.attempts, options, lineage,
                record.started_at, payload, kwargs, mac)

    def _step_mac(self, task_id: str, idx: str, step: int, options: str, lineage: str,
                  started_at: float, payload: bytes | None, kwargs: bytes) -> bytes:
        # The text columns are JSON or numbers, never holding a NUL: one part, joined.
        text = "\0".join((task_id, idx, str(step), options, lineage, repr(float(started_at))))
        return self.signer.sign_bytes(b"step", text.encode(), _nullable(payload), kwargs)

    def record(self, row: Sequence[Any]) -> StepRecord:
        (task_id, idx, step, attempts, options, lineage, started_at, payload, kwargs,
         mac) = row
        if not hmac.compare_digest(mac, self._step_mac(task_id, idx, step, options, lineage,
                                                       started_at, payload, kwargs)):
            raise RegistryError(
                f"the step record of task {task_id} {idx or '(step 0)'} in {self.path} was "
                "altered; it was not unpickled. Restore the registry, or start afresh.")
        return StepRecord(
            task_id=task_id_of(task_id),
            index=index_of(idx),
            step=step,
            payload=INITIAL_INPUT if payload is None else pickle.loads(payload),
            kwargs=pickle.loads(kwargs),
            attempts=attempts,
            options=_options(options),
            lineage_attempts=index_of(lineage),
            started_at=started_at,
        )


# ---------------------------------------------------------------------------- column codecs


def chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    """Pieces of `items` small enough for one `IN (...)` query."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def marks(items: Sequence[object]) -> str:
    return ", ".join("?" * len(items))


def _nullable(value: bytes | str | None) -> bytes:
    """What is signed for a column that may be NULL: NULL and empty differ."""
    if value is None:
        return b"\x00"
    return b"\x01" + (value.encode() if isinstance(value, str) else value)


def id_text(task_id: TaskId) -> str:
    # JSON keeps int 5 and str "5" apart. The first two cases are json.dumps, faster.
    if type(task_id) is int:
        return str(task_id)
    if type(task_id) is str:
        return encode_basestring_ascii(task_id)
    return json.dumps(task_id)


def _options_text(options: Mapping[str, Any]) -> str:
    try:
        return _options_json(tuple(options.items()))
    except TypeError:  # an unhashable option value
        return json.dumps(dict(options))


@functools.lru_cache(maxsize=256)
def _options_json(items: tuple[tuple[str, Any], ...]) -> str:
    # Every step of a run has one of a few option sets: encode each once.
    return json.dumps(dict(items))


@functools.lru_cache(maxsize=256)
def _options(text: str) -> Mapping[str, Any]:
    return MappingProxyType(json.loads(text))


def task_id_of(text: str) -> TaskId:
    return int(text) if text.isdigit() else cast(TaskId, json.loads(text))


def index_text(index: tuple[int, ...]) -> str:
    return ",".join(map(str, index)) if index else ""


def index_of(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",")) if text else ()


_PLAIN_TYPES = frozenset({bytes, bytearray, str, int, float, bool, type(None)})


def dumps(value: Any, by_value: bool = False) -> bytes:
    """Plain pickle where it works (fast: kwargs are usually plain data); cloudpickle for
    what plain pickle cannot take, and always for `by_value` (payloads, which may hold
    objects of the user's script)."""
    if type(value) in _PLAIN_TYPES:
        return pickle.dumps(value, protocol=5)
    if not by_value:
        try:
            return pickle.dumps(value, protocol=5)
        except (pickle.PicklingError, AttributeError, TypeError):
            pass
    return cast(bytes, cloudpickle.dumps(value, protocol=5))
