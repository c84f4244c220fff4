"""The scheduler must be able to import this library, checked once as a run starts
(with the client's connection).

Dask deserializes task graphs on the scheduler, so there every step of a run names this
library's code. Without this check a scheduler that lacks it failed every task with
"Error during deserialization of the task graph", which the run then reported as the
user's protocol raising.
"""

from __future__ import annotations

from importlib import metadata

from distributed import Client

from resilience.errors import ConfigError
from resilience.scheduler_watch import ask_scheduler

DISTRIBUTION = "resilience-testbed"


def installed_version() -> str | None:
    """This library's version where this runs (on the scheduler too), if installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # on sys.path without being installed
        return None


def check_cluster(client: Client) -> None:
    """Raise ConfigError when the client is not connected, or its scheduler cannot
    import this library, or has another version of it."""
    if client.status != "running":
        raise ConfigError(
            f"the client is {client.status!r}, not connected to a scheduler: pass a "
            "running Client (a closed one cannot run anything)."
        )
    try:
        theirs = ask_scheduler(client, installed_version)
    except ImportError as error:
        raise ConfigError(
            f"the scheduler cannot import this library ({error}). Dask runs each task's "
            f"code through the scheduler: install {DISTRIBUTION} in the scheduler's "
            "environment (and the workers'), the same version as this client's."
        ) from error
    ours = installed_version()
    if theirs is not None and ours is not None and theirs != ours:
        raise ConfigError(
            f"the scheduler has {DISTRIBUTION} {theirs}, this client {ours}: install the "
            "same version on the client, the scheduler and the workers."
        )
