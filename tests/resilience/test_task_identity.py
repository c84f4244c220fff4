"""Task ids that print alike are still distinct tasks: int 1 and str "1" each deliver.

Found from outside (issue 11): attempt keys were built from `str(task_id)`, so the
second job took the first one's Dask key, and the run ended with a task neither
delivered nor reported failed. The key encoding is now injective and type-aware, and
a run may only end when every admitted task is delivered or reported failed.
"""

from __future__ import annotations

from typing import Any

import pytest

from resilience import ResilientCluster, TaskFailures
from resilience.jobs import attempt_key


def tag(payload: Any, *, task_id: Any, **_: Any) -> Any:
    return f"{payload}>{type(task_id).__name__}:{task_id!r}"


@pytest.mark.parametrize("registry", [None, "memory", "disk"])
def test_ids_that_print_alike_each_deliver_their_own_output(client, registry):
    tasks = [{"task_id": 1}, {"task_id": "1"}, {"task_id": "a-b"}, {"task_id": "a"}]

    summary = ResilientCluster(client, tasks, input="in",
                               task_registry=registry).distribute([tag, tag])

    got = {(type(o.task_id), o.task_id): o.value for o in summary.outputs}
    assert got == {
        (int, 1): "in>int:1>int:1",
        (str, "1"): "in>str:'1'>str:'1'",
        (str, "a-b"): "in>str:'a-b'>str:'a-b'",
        (str, "a"): "in>str:'a'>str:'a'",
    }
    assert summary.failed == {}


def test_attempt_keys_are_injective_across_id_types_and_separators():
    ids: list[Any] = [1, "1", -1, "-1", "a", "a-b", "a-root", "a-0", "1-root", "", "é", "'1'"]
    keys = {attempt_key("run", task_id, index, step, attempt)
            for task_id in ids for index in [(), (0,), (0, 1), (1,)]
            for step in (0, 1) for attempt in (1, 2)}
    assert len(keys) == len(ids) * 4 * 2 * 2


def test_a_run_that_cannot_account_for_a_task_reports_it_failed(client, monkeypatch):
    """The end-of-run invariant: a task neither delivered nor reported failed is an
    internal error, reported as a failure with its reason, never silence."""
    import resilience.jobs

    # A broken key encoding (the bug): every job of the same step shares one key.
    monkeypatch.setattr(resilience.jobs, "attempt_key", _colliding_key)
    monkeypatch.setattr("resilience.dispatch.attempt_key", _colliding_key)
    rc = ResilientCluster(client, [{"task_id": "x"}, {"task_id": "y"}], input="in")

    with pytest.raises(TaskFailures) as raised:
        rc.distribute(tag)

    delivered = {o.task_id for o in raised.value.summary.outputs}
    assert len(delivered) + len(raised.value.failed) == 2, (delivered, raised.value.failed)
    assert any("internal error" in reason for reason in raised.value.failed.values())


def _colliding_key(run_id: str, task_id: Any, index: tuple[int, ...], step: int,
                   attempt: int) -> str:
    return f"rs-{run_id}-same-s{step}-a{attempt}"


def test_a_run_loop_that_raises_reports_every_unfinished_task_failed(client, monkeypatch):
    """The same invariant when the loop itself fails. A deploy campaign's run died of a
    CommClosedError from a scheduler call made right after its scheduler was killed: the
    error left the run, and its 8 tasks were neither delivered nor reported (the checker
    counted 8 silent losses). The library broken the same way, on its second step."""
    from resilience.replication import InputPlacement

    calls: list[int] = []
    real = InputPlacement.lacking_copies

    def fails_on_step_1(self: InputPlacement, placed: Any) -> list[bool]:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("in <TLS (closed) ConnectionPool.who_has>: Stream is closed")
        return real(self, placed)

    monkeypatch.setattr(InputPlacement, "lacking_copies", fails_on_step_1)
    tasks = [{"task_id": name} for name in ("x", "y", "z")]
    rc = ResilientCluster(client, tasks, input="in", max_task_replicas=2)

    with pytest.raises(TaskFailures) as raised:
        rc.distribute([tag, tag])

    assert isinstance(raised.value.__cause__, OSError)
    delivered = {o.task_id for o in raised.value.summary.outputs}
    assert delivered | set(raised.value.failed) == {"x", "y", "z"}, raised.value.failed
    assert all("internal error, the run loop failed with OSError" in reason
               for reason in raised.value.failed.values())


def test_the_librarys_own_errors_leave_the_run_as_they_are(client, tmp_path):
    """Not every error is a bug: an output that cannot be written says what to do, and
    is raised as itself (here a folder stands where the output file goes)."""
    from resilience.errors import OutputError

    out = tmp_path / "out"
    (out / "x.0.pkl").mkdir(parents=True)
    rc = ResilientCluster(client, [{"task_id": "x"}], input="in", task_registry="disk",
                          output_path=str(out))

    with pytest.raises(OutputError, match=r"x\.0\.pkl"):
        rc.distribute(tag)
