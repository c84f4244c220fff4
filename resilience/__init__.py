"""Exactly-once delivery of protocol-chain results on Dask, under worker preemption.

    from resilience import ResilientCluster
    summary = ResilientCluster(client, tasks, input=pose, task_registry="disk",
                               max_task_replicas=2).distribute(protocols=[p1, p2])

With `output_path=` the run is durable: rerun it after the client died and it resumes;
`python -m resilience status <output_path>` shows its progress.
"""

from resilience.cluster import ResilientCluster
from resilience.config import ResilienceConfig
from resilience.errors import (
    ConfigError,
    OutputError,
    ProtocolError,
    RegistryError,
    ResilienceError,
    SchedulerLost,
    TaskFailures,
)
from resilience.notice import install_notice_handler, uninstall_notice_handler
from resilience.outputs import Output, RunSummary
from resilience.registry import MemoryRegistry, StepRecord, TaskRegistry
from resilience.sink import load_output
from resilience.sqlite_registry import SQLiteRegistry
from resilience.status import run_status

__all__ = [
    "ConfigError",
    "MemoryRegistry",
    "Output",
    "OutputError",
    "ProtocolError",
    "RegistryError",
    "ResilienceConfig",
    "ResilienceError",
    "ResilientCluster",
    "RunSummary",
    "SQLiteRegistry",
    "SchedulerLost",
    "StepRecord",
    "TaskFailures",
    "TaskRegistry",
    "install_notice_handler",
    "load_output",
    "run_status",
    "uninstall_notice_handler",
]
