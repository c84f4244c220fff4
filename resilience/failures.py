"""Why an attempt failed (`classify`), and why a task failed, in words: what happened,
and which setting would have prevented it (`FailureReasons`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from typing import Any

from distributed import Future
from distributed.scheduler import KilledWorker

from resilience.config import ResilienceConfig
from resilience.errors import ProtocolError
from resilience.events import FailureCause
from resilience.worker_step import protocol_name


def classify(future: Future[Any]) -> tuple[FailureCause, str]:
    """Why an attempt failed: its input was lost, its workers died, or the protocol raised.

    Only called on futures in a final state, so reading them does not block.
    """
    if future.status == "cancelled":
        try:
            future.result()
        except CancelledError as error:
            return "lost-input", str(error) or "input lost"
        return "lost-input", "cancelled"
    exception = future.exception()
    if isinstance(exception, KilledWorker):
        return "killed-worker", f"KilledWorker: {exception}"
    if isinstance(exception, CancelledError):
        return "lost-input", str(exception)
    if isinstance(exception, ProtocolError):
        return "protocol-error", f"{exception}\n{exception.traceback}"
    return "protocol-error", f"{type(exception).__name__}: {exception}"


class FailureReasons:
    """Writes the `TaskFailures.failed` reasons for one run's settings and protocols."""

    def __init__(self, config: ResilienceConfig, protocols: Sequence[Callable[..., Any]]) -> None:
        self._config = config
        self._names = [protocol_name(protocol) for protocol in protocols]

    def unrecoverable(self, step: int, cause: str, error: str) -> str:
        """A failure the run could not retry: no registry, or the protocol itself raised."""
        where = self._where(step)
        if cause == "protocol-error":
            return (
                f"{where} raised: {error.strip()}\nFix the protocol, or pass retries= to "
                "distribute()/generate() if the error is transient."
            )
        if cause == "lost-input" and "scheduler-connection-lost" in error:
            return (
                f"{where} was cancelled when the client lost its connection to the "
                "scheduler. Set task_registry='memory' or 'disk' to resubmit it once the "
                "connection is back."
            )
        if cause == "lost-input":
            return (
                f"{where} lost its input when {self._holders()} died "
                f"({_first_line(error)}). Set task_registry='memory' or 'disk' to resubmit it "
                "from a client-side copy" + self._replica_hint() + "."
            )
        if cause == "killed-worker":
            return (
                f"{where}: its workers kept dying while running it ({_first_line(error)}). "
                "Set task_registry='memory' or 'disk' to resubmit it, or raise "
                "distributed.scheduler.allowed-failures on the scheduler."
            )
        if cause == "step-timeout":
            return (
                f"{where} ran longer than step_timeout={self._config.step_timeout}s (a hung "
                "or frozen worker?). Set task_registry='memory' or 'disk' to start a second "
                "attempt elsewhere, or raise step_timeout."
            )
        return f"{where} failed: {cause}: {_first_line(error)}"

    def exhausted(self, step: int, attempts: int, cause: str, error: str) -> str:
        """Every allowed attempt was used up: a poison task, or extreme preemption."""
        return (
            f"{self._where(step)} failed all {attempts} attempts (max_attempts="
            f"{self._config.max_attempts}); the last: {cause}: {_first_line(error)}. A task "
            "that kills every worker it runs on is quarantined this way; if preemption is to "
            "blame instead, raise max_attempts."
        )

    def unsubmittable(self, step: int, error: str) -> str:
        """Submitting kept failing for worker_wait_timeout."""
        return (
            f"{self._where(step)} could not be submitted for worker_wait_timeout="
            f"{self._config.worker_wait_timeout}s; the last error: {_first_line(error)}. "
            "Check that the scheduler and workers are reachable from this client."
        )

    def unserializable(self, step: int, error: str) -> str:
        """Its input or task arguments cannot be pickled: no retry would help."""
        return (
            f"{self._where(step)} could not be submitted: its input or task arguments "
            f"cannot be serialized ({_first_line(error)}); retrying cannot help. Pass values "
            "that cloudpickle can serialize."
        )

    def no_workers(self) -> str:
        """A template with `{step}`: the cluster had no workers for too long."""
        return (
            "step {step} could not finish: the cluster had no workers for "
            f"worker_wait_timeout={self._config.worker_wait_timeout}s. Check the cluster's "
            "scaling or job queue, or raise worker_wait_timeout"
            + ("; then rerun: a durable run resumes these steps."
               if self._config.task_registry == "disk" else ".")
        )

    def scheduler_lost(self, why: str) -> str:
        """A template with `{step}`: the scheduler was lost, `why` (SchedulerWatch's)."""
        why = why.replace("{", "{{").replace("}", "}}")
        return (
            f"step {{step}} could not finish: {why}"
            + ("; start a scheduler and workers, then rerun: a durable run resumes these steps."
               if self._config.task_registry == "disk"
               else "; without a disk registry the run cannot be resumed: rerun it whole.")
        )

    def internal(self, error: Exception) -> str:
        """A template with `{step}`: the run loop itself failed with `error`."""
        what = repr(error).replace("{", "{{").replace("}", "}}")
        return (
            f"step {{step}} could not finish: internal error, the run loop failed with {what}; "
            "please report this as a bug of the resilience library, with the log"
            + ("; a rerun resumes these steps." if self._config.task_registry == "disk"
               else ".")
        )

    def _where(self, step: int) -> str:
        return f"step {step} ({self._names[step]})"

    def _holders(self) -> str:
        n = self._config.max_task_replicas
        if not self._config.scatter:
            return "the scheduler"
        if n in (0, 1):
            return "the only worker holding it"
        return "every worker holding a copy" + ("" if n is None else f" (max_task_replicas={n})")

    def _replica_hint(self) -> str:
        n = self._config.max_task_replicas
        if n in (0, 1):
            return ", or max_task_replicas=2 to keep a second copy on another worker"
        if n is None:
            return ""
        return f", or raise max_task_replicas above {n}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no detail"
