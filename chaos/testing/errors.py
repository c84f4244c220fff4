"""The check's one exception: it was given something it cannot use, or a cluster it cannot use."""

from __future__ import annotations

from chaos.errors import ChaosError


class CheckError(ChaosError, ValueError):
    """Bad arguments (the message names the value, the rule and the fix), or a cluster that
    cannot run the check (too few workers, no nannies, workers that never came back)."""
