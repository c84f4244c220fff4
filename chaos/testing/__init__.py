"""Are *your* protocols safe to restart after a worker is preempted? Check it.

    from chaos.testing import assert_preemption_safe, check_preemption_safety

    report = check_preemption_safety([fold, relax], tasks, input=pose)   # a SafetyReport
    assert_preemption_safe([fold, relax], tasks, input=pose)   # AssertionError if unsafe

Each step of each task runs twice on one worker and once on another, and some are
SIGKILLed part-way and rerun; the working directory is snapshotted around every
attempt. A `Finding` names the protocol, task and step, what differed or was left
behind, and how to fix it. Under pytest, the `preemption` fixture does the same
(`preemption.check(...)`; see `chaos.testing.plugin`); without pytest,
`python -m chaos check-protocols MODULE:FUNC --tasks tasks.json`.

Importing this package does not import Dask (pytest loads the plugin in every
session); the check imports it when it runs.
"""

from chaos.testing.check import assert_preemption_safe, check_preemption_safety
from chaos.testing.errors import CheckError
from chaos.testing.findings import KINDS, Finding, KillRecord, SafetyReport

__all__ = [
    "KINDS",
    "CheckError",
    "Finding",
    "KillRecord",
    "SafetyReport",
    "assert_preemption_safe",
    "check_preemption_safety",
]
