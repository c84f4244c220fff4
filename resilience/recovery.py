"""Where a resubmission is decided: a failed attempt's step is resubmitted, or its task fails.

The policy only decides; the run loop enacts. A step lost to the cluster (its input,
its workers, or its time) is resubmitted from the registry's copy, until
`max_attempts`. A protocol that raised is never resubmitted here (Dask's `retries=`
covers that), and without a registry there is no copy to resubmit from (unless the
client kept one: an input placed short of its replicas): the task is reported failed
with a reason that names the setting that would have saved it.
"""

from __future__ import annotations

from dataclasses import dataclass

from resilience.config import ResilienceConfig
from resilience.events import FailureCause, SubmitReason
from resilience.failures import FailureReasons


@dataclass(frozen=True)
class Decision:
    """Resubmit with `reason`, or (when `resubmit` is None) fail the task with `failure`."""

    resubmit: SubmitReason | None
    failure: str | None = None


class RecoveryPolicy:
    """Decides what becomes of a step whose last live attempt failed."""

    def __init__(self, config: ResilienceConfig, has_registry: bool,
                 reasons: FailureReasons) -> None:
        self._config = config
        self._has_registry = has_registry
        self._reasons = reasons

    def can_resubmit(self, attempts: int, cause: FailureCause, holds_payload: bool) -> bool:
        return (cause != "protocol-error" and (self._has_registry or holds_payload)
                and attempts < self._config.max_attempts)

    def decide(self, step: int, attempts: int, cause: FailureCause, error: str,
               holds_payload: bool) -> Decision:
        """`holds_payload`: the client kept the step's input (see `JobBook.track`)."""
        if self.can_resubmit(attempts, cause, holds_payload):
            return Decision(resubmit_reason(cause))
        if cause != "protocol-error" and (self._has_registry or holds_payload):
            return Decision(None, self._reasons.exhausted(step, attempts, cause, error))
        return Decision(None, self._reasons.unrecoverable(step, cause, error))


def resubmit_reason(cause: FailureCause) -> SubmitReason:
    if cause in ("lost-input", "killed-worker", "step-timeout"):
        return cause
    raise ValueError(f"a {cause} is not resubmitted")
