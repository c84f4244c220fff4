"""The library's exceptions: one small hierarchy; messages name the value, the rule, the fix."""

from __future__ import annotations

from collections.abc import Mapping

from resilience.outputs import RunSummary, TaskId


class ResilienceError(Exception):
    """Base class of every error this library raises."""


class ConfigError(ResilienceError, ValueError):
    """A setting is invalid, or the cluster cannot honour it."""


class RegistryError(ResilienceError):
    """The task registry cannot be opened, read or written."""


class OutputError(ResilienceError):
    """An output could not be written to the output folder; nothing was lost, and the
    run resumes when rerun."""


class TaskFailures(ResilienceError):
    """Some tasks could not be delivered; every other task was.

    `failed` maps each failed task_id to a reason that says what happened and which
    setting would have prevented it. `summary` holds everything that *was* delivered,
    so raising this never loses an output.
    """

    def __init__(self, failed: Mapping[TaskId, str], summary: RunSummary) -> None:
        self.failed = dict(failed)
        self.summary = summary
        lines = [f"{len(self.failed)} task(s) could not be delivered:"]
        shown = list(self.failed.items())[:10]
        lines += [f"  task {task_id!r}: {reason}" for task_id, reason in shown]
        if len(self.failed) > len(shown):
            lines.append(f"  ... and {len(self.failed) - len(shown)} more (see .failed)")
        super().__init__("\n".join(lines))


class SchedulerLost(TaskFailures):
    """The scheduler stayed unreachable past `scheduler_timeout`: the run stopped.

    Every unfinished task is in `failed`, with the reason; a durable run (a "disk"
    registry) keeps them, so the same run started again against a running scheduler
    resumes them and delivers each output once. `summary` holds what was delivered.
    """

    def __init__(self, failed: Mapping[TaskId, str], summary: RunSummary, why: str) -> None:
        super().__init__(failed, summary)
        self.why = why
        self.args = (f"{why}\n{self.args[0]}",)


class ProtocolError(ResilienceError):
    """A protocol raised on a worker. Wraps the original so that it is never mistaken
    for a worker death, and carries the remote traceback as text."""

    def __init__(self, protocol: str, step: int, error: str, traceback: str) -> None:
        super().__init__(protocol, step, error, traceback)
        self.protocol = protocol
        self.step = step
        self.error = error
        self.traceback = traceback

    def __str__(self) -> str:
        return f"protocol {self.protocol} (step {self.step}) raised {self.error}"
