"""The studies' exceptions: one small hierarchy; each message names the value, rule and fix."""

from __future__ import annotations


class ExperimentError(Exception):
    """Base of every error `experiments` raises on purpose."""


class StudyError(ExperimentError, ValueError):
    """A study file that breaks a rule: the message names the file, the key and the fix."""


class ResultsError(ExperimentError):
    """A results folder that cannot be continued (another study, a concurrent runner)."""


class CalibrationError(ExperimentError):
    """The simulator cannot be calibrated or used: too few measured runs, or not validated."""
