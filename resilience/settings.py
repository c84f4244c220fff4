"""Settings from Dask's configuration: `resilience.*` keys, YAML or environment.

    export DASK_RESILIENCE__TASK_REGISTRY=disk      # as a job script on a cluster sets it
    ResilientCluster(client, tasks, max_task_replicas=2)   # a keyword argument wins

`resilience.yaml` (shipped with the package) holds every default and its meaning; it
is registered with Dask's defaults on import. `resolve_settings` merges the keyword
arguments given with the configuration, and a bad value raises `ConfigError` naming
where it came from: the keyword argument, or the configuration key and its env name.
`registry_key` (a secret) and `on_event` (a callable) are keyword arguments only.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from typing import Any

import dask.config
import yaml

from resilience.config import ResilienceConfig
from resilience.errors import ConfigError

# Settings that may come from the configuration, by their keyword names.
CONFIGURABLE = ("max_task_replicas", "task_registry", "registry_path", "output_path",
                "start_afresh", "max_attempts", "scatter", "replica_guard", "step_timeout",
                "worker_wait_timeout", "scheduler_timeout", "max_in_flight")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # a keyword argument the caller did not give


def config_key(name: str) -> str:
    """`resilience.max-task-replicas` for `max_task_replicas`."""
    return "resilience." + name.replace("_", "-")


def env_name(name: str) -> str:
    """`DASK_RESILIENCE__MAX_TASK_REPLICAS` for `max_task_replicas`."""
    return "DASK_RESILIENCE__" + name.upper()


def resolve_settings(given: Mapping[str, Any]) -> ResilienceConfig:
    """A validated config: the keyword arguments `given` (UNSET ones left out), the rest
    from Dask's configuration."""
    values = {name: value for name, value in given.items() if value is not UNSET}
    from_config = [name for name in CONFIGURABLE if name not in values]
    for name in from_config:
        values[name] = dask.config.get(config_key(name))
    try:
        return ResilienceConfig(**values)
    except ConfigError as error:
        text = str(error)
        culprit = next((name for name in from_config if text.startswith(f"{name}=")), None)
        if culprit is None:
            raise
        raise ConfigError(
            f"{text} (this value came from Dask's configuration key {config_key(culprit)!r}: "
            f"a YAML file Dask reads, or the environment variable {env_name(culprit)}; fix it "
            "there, or pass the keyword argument, which takes precedence)"
        ) from None


def _register_defaults() -> None:
    text = files("resilience").joinpath("resilience.yaml").read_text(encoding="utf-8")
    dask.config.update_defaults(yaml.safe_load(text))


_register_defaults()
