"""Task identity: turn the user's task dicts into `TaskSpec`s with stable, unique ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resilience.errors import ConfigError
from resilience.outputs import TaskId


@dataclass(frozen=True)
class TaskSpec:
    """One task: its id and the kwargs handed to every protocol."""

    task_id: TaskId
    kwargs: Mapping[str, Any]
    position: int


def task_specs(tasks: Iterable[Mapping[str, Any]], check_unique: bool = True
               ) -> Iterator[TaskSpec]:
    """A `TaskSpec` per task, made lazily, so a generator of tasks is never materialised.

    The id is the task's "task_id" value when present, else its position in `tasks`.
    A `tasks` that is not an iterable of dicts raises `ConfigError` at once; a bad
    task raises it when it is reached. `check_unique=False` leaves repeated ids to the
    caller (a durable registry checks them on disk, so memory stays bounded).
    """
    if isinstance(tasks, Mapping):
        raise ConfigError(
            "tasks is a single dict; pass an iterable of dicts, e.g. [task] or a generator."
        )
    try:
        iterator = iter(tasks)
    except TypeError:
        raise ConfigError(
            f"tasks={tasks!r} is not iterable; pass a list or generator of dicts."
        ) from None
    return _specs(iterator, check_unique, tasks if isinstance(tasks, Sequence) else None)


def _specs(iterator: Iterator[Mapping[str, Any]], check_unique: bool,
           listed: Sequence[Mapping[str, Any]] | None) -> Iterator[TaskSpec]:
    # The ids seen, and nothing else: about 70 bytes per int id and 100 per short str id
    # (the id and its slot), which a run without a durable registry keeps for as long as
    # it draws tasks, since unique ids are what makes each output's name unique.
    seen: set[TaskId] = set()
    for position, task in enumerate(iterator):
        if not isinstance(task, Mapping):
            raise ConfigError(
                f"task at position {position} is {type(task).__name__} {task!r}; each task "
                "must be a dict of keyword arguments for the protocols."
            )
        bad_keys = [key for key in task if not isinstance(key, str)]
        if bad_keys:
            raise ConfigError(
                f"task at position {position} has non-string keys {bad_keys!r}; protocols "
                "receive tasks as **kwargs, so every key must be a str."
            )
        task_id = _task_id(task, position)
        if check_unique:
            if task_id in seen:
                raise repeated_task_id(task_id, position, _earlier(listed, task_id))
            seen.add(task_id)
        yield TaskSpec(task_id=task_id, kwargs=dict(task), position=position)


def _earlier(listed: Sequence[Mapping[str, Any]] | None, task_id: TaskId) -> str:
    """Which earlier task had `task_id`: its position when the tasks are a list."""
    for position, task in enumerate(listed or ()):
        if _task_id(task, position) == task_id:
            return f"the task at position {position}"
    return "an earlier task"


def _task_id(task: Mapping[str, Any], position: int) -> TaskId:
    if "task_id" not in task:
        return position
    task_id = task["task_id"]
    if isinstance(task_id, bool) or not isinstance(task_id, (str, int)):
        raise ConfigError(
            f"task at position {position} has task_id={task_id!r} "
            f"({type(task_id).__name__}); a task_id must be a str or an int."
        )
    return task_id


def repeated_task_id(task_id: TaskId, position: int, earlier: str) -> ConfigError:
    return ConfigError(
        f"task_id {task_id!r} at position {position} repeats {earlier}; task ids name "
        "outputs, so they must be unique. Give every task a distinct 'task_id' (or none, "
        "to use positions)."
    )
