"""One reader for the spec's discriminated JSON unions (triggers and target roles).

A trigger is `{"type": "at-step", ...}` and a role `{"role": "running", ...}`: the
tag field names the class, the other fields are its constructor's arguments. Both are
read here, so a bad tag or field gives the same kind of message everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.errors import ScheduleError


def from_tagged(data: Any, tag: str, classes: Mapping[str, type], what: str) -> Any:
    """The instance `data` describes: `classes[data[tag]](**other fields)`.

    Raises ScheduleError naming the unknown tag (and the allowed ones) or the bad field.
    """
    if not isinstance(data, dict) or data.get(tag) not in classes:
        name = data.get(tag) if isinstance(data, dict) else data
        raise ScheduleError(
            f"{what} {tag} {name!r} is unknown; a {what} is a JSON object whose \"{tag}\" is "
            f"one of {', '.join(sorted(classes))}."
        )
    fields = {key: value for key, value in data.items() if key != tag}
    try:
        return classes[data[tag]](**fields)
    except TypeError as error:
        raise ScheduleError(f"{what} {data!r} has a bad field ({error}).") from None
