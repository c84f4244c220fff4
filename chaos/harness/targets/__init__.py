"""Targets: the systems a chaos run drives. `make_target(name)` builds one by name."""

from __future__ import annotations

from chaos.errors import TargetUnavailable
from chaos.harness.targets.base import Target, TargetConfig, TargetRun
from chaos.harness.targets.dask_raw import DaskRawTarget
from chaos.harness.targets.prc630 import Prc630Target
from chaos.harness.targets.pyrosettacluster import PyRosettaClusterTarget
from chaos.harness.targets.resilient import ResilienceTarget

TARGETS: dict[str, type[Target]] = {
    cls.name: cls for cls in (ResilienceTarget, DaskRawTarget, Prc630Target,
                              PyRosettaClusterTarget)
}


def make_target(name: str) -> Target:
    """A fresh target by name; TargetUnavailable says why it cannot run here."""
    cls = TARGETS.get(name)
    if cls is None:
        raise TargetUnavailable(
            f"target {name!r} is unknown; choose one of {', '.join(sorted(TARGETS))}."
        )
    reason = cls.unavailable()
    if reason is not None:
        raise TargetUnavailable(f"target {name!r} cannot run here: {reason}.")
    return cls()


__all__ = ["TARGETS", "Target", "TargetConfig", "TargetRun", "make_target"]
