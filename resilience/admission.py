"""Admission: which jobs start next, within `max_in_flight` unfinished steps.

First the steps an earlier session of a durable run left unfinished, then new tasks,
drawn lazily from the user's (possibly endless) task iterable. A bad task deep in a
generator, or a repeated id, ends admission: what was admitted runs to its end, and
the `ConfigError` is raised after.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from resilience.durable import DurableRun
from resilience.errors import ConfigError
from resilience.jobs import Job
from resilience.outputs import TaskId
from resilience.registry import INITIAL_INPUT
from resilience.tasks import TaskSpec, repeated_task_id


class Admission:
    """Draws jobs from the task iterable (and a durable run's unfinished steps)."""

    def __init__(self, tasks: Iterator[TaskSpec], durable: DurableRun | None) -> None:
        self._tasks = tasks
        self._durable = durable
        self.exhausted = False
        self.deferred_error: ConfigError | None = None

    def admit(self, room: int) -> tuple[list[Job], list[Job], list[TaskSpec]]:
        """Up to `room` jobs: (resumed jobs, new jobs, the new jobs' tasks)."""
        resumed: list[Job] = []
        if room > 0 and self._durable is not None:
            resumed = [Job.resume(record) for record in self._durable.unfinished(room)]
            room -= len(resumed)
        tasks: list[TaskSpec] = []
        while not self.exhausted and len(tasks) < room:
            try:
                tasks.append(next(self._tasks))
            except StopIteration:
                self.exhausted = True
            except ConfigError as error:
                self._stop(error)
        tasks = self._drop_repeated_ids(tasks)
        now = time.time()
        return resumed, [Job(task, (), 0, INITIAL_INPUT, (), now) for task in tasks], tasks

    def never_started(self) -> list[TaskId]:
        """End admission: the ids of the tasks that will never start."""
        ids: list[TaskId] = []
        try:
            for task in self._tasks:
                ids.append(task.task_id)
        except ConfigError as error:
            self.deferred_error = error
        self.exhausted = True
        return ids

    def _stop(self, error: ConfigError) -> None:
        self.deferred_error = error
        self.exhausted = True

    def _drop_repeated_ids(self, tasks: list[TaskSpec]) -> list[TaskSpec]:
        """A durable run checks ids on disk (task_specs checked the others in memory):
        the first repeat ends admission, with a ConfigError once the rest finished."""
        if self._durable is None or not tasks:
            return tasks
        known = self._durable.registry.known_task_ids([task.task_id for task in tasks])
        seen: set[TaskId] = set()
        for count, task in enumerate(tasks):
            if task.task_id in known or task.task_id in seen:
                self._stop(repeated_task_id(task.task_id, task.position,
                                            "an earlier task of this run"))
                return tasks[:count]
            seen.add(task.task_id)
        return tasks

