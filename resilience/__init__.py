"""Exactly-once delivery of protocol-chain results on Dask, under worker preemption.

    from resilience import ResilientCluster
    summary = ResilientCluster(client, tasks, input=pose, task_registry="disk",
                               max_task_replicas=2).distribute(protocols=[p1, p2])
"""

from resilience.cluster import ResilientCluster
from resilience.config import ResilienceConfig
from resilience.delivery import Output, RunSummary
from resilience.errors import (
    ConfigError,
    ProtocolError,
    RegistryError,
    ResilienceError,
    TaskFailures,
)
from resilience.registry import MemoryRegistry, StepRecord, TaskRegistry
from resilience.sqlite_registry import SQLiteRegistry

__all__ = [
    "ConfigError",
    "MemoryRegistry",
    "Output",
    "ProtocolError",
    "RegistryError",
    "ResilienceConfig",
    "ResilienceError",
    "ResilientCluster",
    "RunSummary",
    "SQLiteRegistry",
    "StepRecord",
    "TaskFailures",
    "TaskRegistry",
]
