"""The chaos harness's exceptions: one small hierarchy, each message naming value, rule and fix."""

from __future__ import annotations


class ChaosError(Exception):
    """Base of every error the chaos harness raises on purpose."""


class ScheduleError(ChaosError, ValueError):
    """A fault, trigger, target role or schedule that breaks a rule (bad JSON, bad value)."""


class WorkloadError(ChaosError, ValueError):
    """A workload setting out of range, or a payload that is not the workload's."""


class TargetUnavailable(ChaosError):
    """A target that cannot run here: unknown name, or a package (PyRosetta) not importable."""


class FaultError(ChaosError):
    """A fault that could not be enacted on the worker it was aimed at."""


class ClusterError(ChaosError):
    """The cluster did not get back to the state a run needs (workers, no leftover tasks)."""


class HistoryError(ChaosError, ValueError):
    """A history that breaks the format of docs/history.md; the message names the line."""
