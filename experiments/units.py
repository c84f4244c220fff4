"""Quantities written the way people write them in a study file: "10min", "120 s", "2GB".

A bare number is seconds (durations) or bytes (sizes). Errors say which spellings work.
"""

from __future__ import annotations

import math
import re

from experiments.errors import StudyError

_SECONDS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0,
            "hour": 3600.0, "hours": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0}
_BYTES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def seconds(value: object, *, where: str) -> float:
    """A duration in seconds from 12, 1.5, "90s", "10min", "1h" or "250ms"."""
    number, unit = _split(value, where, "a duration such as 30, \"120s\", \"10min\" or \"1h\"")
    factor = _SECONDS.get(unit.lower() or "s")
    if factor is None:
        raise StudyError(f"{where} = {value!r}: unknown time unit {unit!r}; use one of "
                         f"{', '.join(sorted(set(_SECONDS)))} (or a bare number of seconds).")
    return number * factor


def size_bytes(value: object, *, where: str) -> int:
    """A size in bytes from 100000, "100KB", "2GB" or "1.5MiB"."""
    number, unit = _split(value, where, "a size such as 100000, \"100KB\" or \"2GB\"")
    factor = _BYTES.get(unit.lower() or "b")
    if factor is None:
        raise StudyError(f"{where} = {value!r}: unknown size unit {unit!r}; use one of "
                         f"{', '.join(sorted(_BYTES))} (or a bare number of bytes).")
    return round(number * factor)


def _split(value: object, where: str, example: str) -> tuple[float, str]:
    if isinstance(value, bool):
        raise StudyError(f"{where} = {value!r}: expected {example}.")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    elif isinstance(value, str) and (match := _QUANTITY.match(value)):
        number, unit = float(match.group(1)), match.group(2)
    else:
        raise StudyError(f"{where} = {value!r}: expected {example}.")
    if not math.isfinite(number) or number < 0:
        raise StudyError(f"{where} = {value!r}: must be a finite number >= 0.")
    return number, unit


def format_seconds(value: float) -> str:
    """A duration as a person reads it: "250 ms", "42 s", "10 min", "2.5 h"."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.3g} s"
    if value < 7200:
        return f"{value / 60:.3g} min"
    return f"{value / 3600:.3g} h"


def format_bytes(value: float) -> str:
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= factor:
            return f"{value / factor:.3g} {unit}"
    return f"{value:.0f} B"
