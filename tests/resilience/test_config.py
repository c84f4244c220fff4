"""Every bad setting is refused up front with a ConfigError that names the value and the fix."""

from __future__ import annotations

import pickle
import threading
import time

import pytest
from distributed import Client

from resilience import ConfigError, ResilientCluster, TaskFailures
from resilience.config import resolve_retries
from resilience.dispatch import _unpicklable
from resilience.tasks import task_specs


def identity(payload, **_):
    return payload


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"max_task_replicas": -1}, "max_task_replicas=-1 must be an int >= 0"),
        ({"max_task_replicas": 1.5}, "max_task_replicas=1.5"),
        ({"max_task_replicas": True}, "max_task_replicas=True"),
        ({"task_registry": "redis"}, "task_registry='redis' is not one of"),
        ({"task_registry": "memory", "registry_path": "x.db"}, "only used by task_registry='disk'"),
        ({"max_attempts": 0}, "max_attempts=0 must be an int >= 1"),
        ({"max_attempts": "3"}, "max_attempts='3'"),
        ({"scatter": "yes"}, "scatter='yes' must be True or False"),
        ({"scatter": False, "max_task_replicas": 2}, "needs scatter=True"),
        ({"scatter": False, "max_task_replicas": None}, "needs scatter=True"),
        ({"replica_guard": "off"}, "replica_guard='off' is not one of"),
        ({"step_timeout": 0}, "step_timeout=0 must be a number of seconds > 0"),
        ({"step_timeout": -1.0}, "step_timeout=-1.0"),
        ({"worker_wait_timeout": 0}, "worker_wait_timeout=0"),
        ({"max_in_flight": 0}, "max_in_flight=0 must be an int >= 1"),
        ({"on_event": "print"}, "on_event='print' must be callable"),
        ({"output_path": "out"}, "output_path was given with task_registry=None"),
        ({"task_registry": "memory", "registry_key": b"k" * 32}, "registry_key was given"),
        ({"task_registry": "disk", "registry_key": b"short"}, "bytes of length >= 16"),
        ({"task_registry": "disk", "registry_key": "a str key, not bytes"}, "must be bytes"),
        ({"task_registry": "disk", "start_afresh": True}, "start_afresh=True needs"),
        ({"task_registry": "disk", "output_path": "out", "start_afresh": 1}, "start_afresh=1"),
        ({"task_registry": "disk", "output_path": __file__}, "is a file, not a folder"),
    ],
)
def test_a_bad_setting_is_refused_with_the_value_and_the_rule(client, settings, says):
    with pytest.raises(ConfigError, match=_literal(says)):
        ResilientCluster(client, [{}], **settings)


def test_a_client_that_is_not_a_dask_client_is_refused():
    with pytest.raises(ConfigError, match=r"is not a distributed\.Client"):
        ResilientCluster("tcp://scheduler:8786", [{}])


@pytest.mark.parametrize(
    ("tasks", "says"),
    [
        ({"task_id": 1}, "tasks is a single dict"),
        (5, "is not iterable"),
        ([{"task_id": 1}, "oops"], "task at position 1 is str"),
        ([{1: "x"}], "non-string keys"),
        ([{"task_id": 1.5}], "task_id=1.5 (float); a task_id must be a str or an int"),
        ([{"task_id": True}], "task_id=True"),
        ([{"task_id": "a"}, {"task_id": "a"}], "task_id 'a' at position 1 repeats"),
        ([{"task_id": 1}, {}], "task_id 1 at position 1 repeats"),  # position-derived
    ],
)
def test_bad_tasks_are_refused_before_anything_runs(client, tasks, says):
    with pytest.raises(ConfigError, match=_literal(says)):
        ResilientCluster(client, tasks)


def test_a_duplicate_deep_in_a_generator_is_raised_after_the_rest_is_delivered(client):
    tasks = ({"task_id": i % 3} for i in range(4))  # the 4th repeats task 0
    rc = ResilientCluster(client, tasks, input=0, max_in_flight=1)

    outputs = []
    with pytest.raises(ConfigError, match="task_id 0 at position 3 repeats"):
        outputs.extend(rc.generate(identity))

    assert sorted(o.task_id for o in outputs) == [0, 1, 2]


@pytest.mark.parametrize(
    ("protocols", "retries", "says"),
    [
        ([], None, "protocols is empty"),
        ([identity, "step2"], None, "protocols[1]='step2' is not callable"),
        ([identity], -1, "retries=-1 must be an int >= 0"),
        ([identity, identity], [1], "retries has 1 values for 2 protocols"),
        ([identity], [1.5], "each retries value=1.5"),
        ([identity], "2", "retries='2' must be None, an int >= 0, or a list"),
    ],
)
def test_bad_protocols_or_retries_are_refused_when_the_run_starts(client, protocols, retries, says):
    rc = ResilientCluster(client, [{}])
    with pytest.raises(ConfigError, match=_literal(says)):
        rc.generate(protocols, retries=retries)
    with pytest.raises(ConfigError, match=_literal(says)):
        rc.distribute(protocols, retries=retries)


LOCK = threading.Lock()


def uses_a_lock(payload, **_):
    with LOCK:
        return payload


uses_a_lock.__module__ = "__main__"  # pickled by value, as a notebook's function is


def test_a_protocol_that_cannot_be_pickled_is_refused_when_the_run_starts(client):
    rc = ResilientCluster(client, [{}], input="x")
    with pytest.raises(ConfigError, match=r"^protocols\[1\]=<function uses_a_lock .*> cannot "
                                          r"be pickled \(cannot pickle '_thread.lock'"):
        rc.distribute([identity, uses_a_lock])


@pytest.mark.parametrize("scatter", [True, False])
@pytest.mark.parametrize("where", ["input", "task"])
def test_a_value_that_cannot_be_pickled_fails_its_tasks_at_once_saying_so(client, scatter, where):
    # It was retried as if the cluster were unreachable, for worker_wait_timeout, then
    # reported with "Check that the scheduler and workers are reachable".
    lock = threading.Lock()
    tasks = [{"task_id": i, **({"lock": lock} if where == "task" else {})} for i in range(2)]
    rc = ResilientCluster(client, tasks, input=lock if where == "input" else "x",
                          scatter=scatter, worker_wait_timeout=30)
    started = time.monotonic()
    with pytest.raises(TaskFailures) as raised:
        rc.distribute(identity)
    assert time.monotonic() - started < 5
    assert set(raised.value.failed) == {0, 1}
    assert all("cannot be serialized" in reason and "lock" in reason
               for reason in raised.value.failed.values()), raised.value.failed


def test_only_a_value_that_cannot_be_serialized_fails_a_submission_at_once(client):
    # Any other error of a submission is retried for worker_wait_timeout (the cluster
    # may come back), and reported as unreachable if it lasts: a TypeError from Dask's
    # client in a race, say, must not be called a value no retry can help.
    with pytest.raises(Exception) as refused:
        client.submit(identity, threading.Lock(), pure=False)
    assert _unpicklable(refused.value), repr(refused.value)  # Dask's own error for it
    assert _unpicklable(pickle.PicklingError("Can't pickle <function <lambda>>"))
    assert not _unpicklable(TypeError("'NoneType' object is not subscriptable"))


def test_a_closed_client_is_refused_with_a_clear_error(client):
    closed = Client(client.scheduler.address, timeout="10s")
    rc = ResilientCluster(closed, [{}], input=1)
    closed.close()
    with pytest.raises(ConfigError, match="the client is 'closed', not connected"):
        rc.distribute(identity)


def test_a_generator_of_tasks_cannot_be_run_twice(client):
    rc = ResilientCluster(client, ({"task_id": i} for i in range(2)), input=1)
    assert len(rc.distribute(identity).outputs) == 2
    with pytest.raises(ConfigError, match="an earlier run consumed it"):
        rc.distribute(identity)


def test_a_list_of_tasks_can_be_run_again(client):
    rc = ResilientCluster(client, [{"task_id": i} for i in range(2)], input=1)
    assert len(rc.distribute(identity).outputs) == 2
    assert len(rc.distribute(identity).outputs) == 2


def test_task_ids_default_to_positions_and_keep_their_type():
    specs = list(task_specs([{"task_id": "a"}, {}, {"task_id": 7}]))
    assert [s.task_id for s in specs] == ["a", 1, 7]


def test_retries_resolve_to_one_value_per_protocol():
    assert resolve_retries(None, 3) == [0, 0, 0]
    assert resolve_retries(2, 2) == [2, 2]
    assert resolve_retries([0, 3], 2) == [0, 3]


def _literal(text: str) -> str:
    import re

    return re.escape(text)
