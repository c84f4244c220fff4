"""The `resilience` target: this project's library, under any replicas/registry/scatter setting.

It drives `resilience.ResilientCluster(...).generate(...)` and turns the library's
observer events (`on_event`) into history events: `submit`, `step-error`,
`step-completed`, `duplicate-suppressed` and `task-failed`. Each `Output` becomes a
`deliver`. `TaskFailures` at the end is re-raised, so the run ends "failed" with the
reasons in the history.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from chaos.errors import ScheduleError
from chaos.harness.targets.base import Target, TargetConfig, TargetRun, cancel_client_futures


class ResilienceTarget(Target):
    name: ClassVar[str] = "resilience"

    def __init__(self) -> None:
        self._aborted = threading.Event()
        self._client: Any = None

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            from resilience import ResilientCluster  # noqa: F401
        except ImportError as error:
            return f"the resilience library cannot be imported ({error})"
        return None

    def check(self, config: TargetConfig) -> None:
        # Refuse before a run what the library would refuse at its start (a run that
        # only ends in ConfigError tells nothing about resilience).
        from resilience import ConfigError, ResilienceConfig

        try:
            ResilienceConfig(max_task_replicas=config.max_task_replicas,
                             task_registry=config.task_registry,  # type: ignore[arg-type]
                             scatter=config.scatter,
                             max_attempts=config.max_attempts, step_timeout=config.step_timeout)
        except ConfigError as error:
            raise ScheduleError(f"the resilience library refuses this setting: {error}") from None

    def recorded_config(self, config: TargetConfig, allowed_failures: int) -> dict[str, Any]:
        recorded = super().recorded_config(config, allowed_failures)
        recorded.setdefault("replica_guard", config.options.get("replica_guard", "policy"))
        return recorded

    def run(self, run: TargetRun) -> None:
        from resilience import ResilientCluster, install_notice_handler, uninstall_notice_handler

        config = run.config
        self._client = run.client
        options = dict(config.options)
        if config.task_registry == "disk" and "registry_path" not in options:
            options["registry_path"] = str(run.scratch / "registry.sqlite")
        cluster = ResilientCluster(
            run.client,
            run.workload.tasks(),
            input=run.workload.initial_input(),
            max_task_replicas=config.max_task_replicas,
            task_registry=config.task_registry,
            max_attempts=config.max_attempts,
            scatter=config.scatter,
            on_event=lambda event: _record(run, event),
            step_timeout=config.step_timeout,
            **options,
        )
        if config.notice is not None:  # for this run only: the cluster is shared
            install_notice_handler(run.client, notice=config.notice)
        outputs = cluster.generate(protocols=run.protocols, retries=config.retries)
        try:
            for output in outputs:
                run.deliver(output.task_id, tuple(output.index), output.value, output.attempts)
                if self._aborted.is_set():
                    break
        finally:
            outputs.close()  # type: ignore[attr-defined]
            if config.notice is not None:
                uninstall_notice_handler(run.client)

    def abort(self) -> None:
        self._aborted.set()
        if self._client is not None:
            cancel_client_futures(self._client)


def _record(run: TargetRun, event: Any) -> None:
    """One library event as one history event (docs/history.md)."""
    from resilience import events

    common = {"time": event.time}
    if isinstance(event, events.WaitingForWorkers):
        run.history.emit("waiting-for-workers", unfinished=event.unfinished,
                         timeout=event.timeout, **common)
        return
    if isinstance(event, events.WorkersReturned):
        run.history.emit("workers-returned", workers=event.workers, waited=event.waited,
                         **common)
        return
    if isinstance(event, events.TaskFailed):
        run.history.emit("task-failed", task_id=event.task_id, reason=event.reason, **common)
        return
    if isinstance(event, events.ResultsDelayed):
        run.history.emit("results-delayed", keys=list(event.keys), seconds=event.seconds,
                         **common)
        return
    step = {"task_id": event.task_id, "index": list(event.index), "step": event.step,
            "attempt": event.attempt, "key": event.key, **common}
    if isinstance(event, events.StepSubmitted):
        run.history.emit("submit", reason=event.reason, **step)
    elif isinstance(event, events.StepFailed):
        run.history.emit("step-error", cause=event.cause, error=event.error, **step)
    elif isinstance(event, events.StepCompleted):
        run.history.emit("step-completed", n_outputs=event.n_outputs, **step)
    elif isinstance(event, events.DuplicateSuppressed):
        run.history.emit("duplicate-suppressed", **step)
