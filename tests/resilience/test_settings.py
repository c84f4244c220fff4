"""ResilientCluster settings from Dask's configuration: YAML keys and DASK_RESILIENCE__*
variables fill what the keyword arguments leave out, the keywords win, and a bad value
from the configuration is refused naming its key and its environment variable."""

from __future__ import annotations

import dataclasses

import dask
import pytest

from resilience import ConfigError
from resilience.config import ResilienceConfig
from resilience.settings import CONFIGURABLE, resolve_settings


def test_the_shipped_defaults_are_the_config_defaults():
    resolved = resolve_settings({})
    defaults = ResilienceConfig()
    assert {n: getattr(resolved, n) for n in CONFIGURABLE} == {
        n: getattr(defaults, n) for n in CONFIGURABLE}


def test_a_configuration_key_fills_what_the_keywords_leave_out_and_a_keyword_wins():
    with dask.config.set({"resilience.task-registry": "memory",
                          "resilience.max-task-replicas": 2}):
        resolved = resolve_settings({"max_task_replicas": 0})
    assert (resolved.task_registry, resolved.max_task_replicas) == ("memory", 0)


def test_an_environment_variable_is_read_as_a_job_script_sets_it():
    # Dask's own parser of DASK_* variables; applied with set(), not refresh(), which
    # would drop the settings that the session's clusters hold.
    from_env = dask.config.collect_env({"DASK_RESILIENCE__MAX_ATTEMPTS": "7",
                                        "DASK_RESILIENCE__TASK_REGISTRY": "disk"})
    dotted = {f"resilience.{key}": value for key, value in from_env["resilience"].items()}
    with dask.config.set(dotted):
        resolved = resolve_settings({})
    assert (resolved.max_attempts, resolved.task_registry) == (7, "disk")


def test_a_bad_value_from_the_configuration_names_its_key_and_variable():
    with dask.config.set({"resilience.max-attempts": 0}), pytest.raises(ConfigError) as raised:
        resolve_settings({})
    message = str(raised.value)
    assert "max_attempts=0" in message
    assert "'resilience.max-attempts'" in message and "DASK_RESILIENCE__MAX_ATTEMPTS" in message
    # The same value as a keyword is the caller's: no configuration key to blame.
    with pytest.raises(ConfigError) as raised:
        resolve_settings({"max_attempts": 0})
    assert "resilience.max-attempts" not in str(raised.value)


def test_every_configurable_setting_is_a_config_field():
    names = {field.name for field in dataclasses.fields(ResilienceConfig)}
    assert set(CONFIGURABLE) <= names
