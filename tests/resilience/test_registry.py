"""The two registry backends honour one contract; the SQLite one also survives its process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience import MemoryRegistry, RegistryError, SQLiteRegistry, StepRecord, TaskRegistry
from resilience.registry import INITIAL_INPUT


@pytest.fixture(params=["memory", "sqlite"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskRegistry]:
    backend: TaskRegistry = (
        MemoryRegistry() if request.param == "memory" else SQLiteRegistry(tmp_path / "r.sqlite")
    )
    with backend:
        yield backend


def record(task_id: str | int = "t", index: tuple[int, ...] = (), step: int = 0,
           payload: object = INITIAL_INPUT, **extra: object) -> StepRecord:
    return StepRecord(task_id, index, step, payload, {"task_id": task_id, "seed": 7}, **extra)


def test_only_the_registry_that_outlives_its_process_calls_itself_durable(registry, request):
    # The run loop keeps the record of a step the *cluster* failed (no workers, a lost
    # scheduler) only in a durable registry, for a rerun to resume it; a memory registry,
    # which no rerun can read, must let such records go.
    assert registry.durable is (request.node.callspec.params["registry"] == "sqlite")


def test_records_round_trip_with_their_types(registry):
    records = [
        record("a", payload=INITIAL_INPUT, attempts=1, options={"retries": 2}),
        record(5, (2,), 1, payload={"pose": b"\x00" * 1000}, lineage_attempts=(3,)),
        record("5", (0, 1), 2, payload=[1, 2, 3]),
    ]
    registry.update(add=records)

    assert len(registry) == 3
    assert registry.get(("a", ())) == records[0]
    assert registry.get((5, (2,))) == records[1]
    assert registry.get(("5", (0, 1))) == records[2]  # str "5" and int 5 are different tasks
    assert registry.get(("missing", ())) is None
    assert sorted(map(str, (r.key for r in registry.records()))) == sorted(
        map(str, (r.key for r in records)))


def test_an_update_adds_children_and_removes_the_parent_together(registry):
    registry.update(add=[record("t")])
    children = [record("t", (i,), 1, payload=f"decoy {i}") for i in range(3)]

    registry.update(add=children, remove=[("t", ())])

    assert registry.get(("t", ())) is None
    assert [r.payload for r in registry.get_many([("t", (i,)) for i in range(3)])] == [
        "decoy 0", "decoy 1", "decoy 2"]
    assert registry.get(("t", (1,))).kwargs == {"task_id": "t", "seed": 7}


def test_attempts_are_set_per_record(registry):
    registry.update(add=[record("a", attempts=1), record("b", attempts=1)])
    registry.set_attempts([(("a", ()), 3), (("gone", ()), 2)])
    assert registry.get(("a", ())).attempts == 3
    assert registry.get(("b", ())).attempts == 1
    assert registry.get(("gone", ())) is None


def test_a_failed_step_loses_its_record(registry):
    registry.update(add=[record("a"), record("b")])
    registry.update(failed=[(("a", ()), "poison")])
    assert [r.task_id for r in registry.records()] == ["b"]


def test_the_shared_initial_input_is_stored_once(registry):
    registry.set_initial_input({"pose": "start"})
    registry.update(add=[record(i) for i in range(100)])
    assert registry.initial_input() == {"pose": "start"}
    assert all(r.payload is INITIAL_INPUT for r in registry.records())


def test_the_sqlite_registry_survives_its_process(tmp_path):
    path = tmp_path / "registry.sqlite"
    script = f"""
import os
from resilience import SQLiteRegistry, StepRecord
r = SQLiteRegistry({str(path)!r})
r.set_initial_input("input")
r.update(add=[StepRecord("t", (1,), 1, "payload", {{"x": 1}}, attempts=2, started_at=5.0)])
os._exit(0)  # no close, no cleanup: as if killed
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

    with SQLiteRegistry(path) as reopened:
        [survivor] = list(reopened.records())
        assert survivor == StepRecord("t", (1,), 1, "payload", {"x": 1}, attempts=2,
                                      started_at=5.0)
        assert reopened.initial_input() == "input"


def test_the_sqlite_registry_keeps_only_the_id_of_a_finished_task(tmp_path):
    path = tmp_path / "r.sqlite"
    with SQLiteRegistry(path) as registry:
        registry.update(add=[record("t")])
        registry.update(add=[record("t", (0,), 1, payload="p")], remove=[("t", ())])
        registry.update(remove=[("t", (0,))])
        assert registry.known_task_ids(["t", "u"]) == {"t"}  # the id stays, for uniqueness
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT * FROM tasks").fetchall() == [('"t"',)]
        assert db.execute("SELECT COUNT(*) FROM steps").fetchone() == (0,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_failed_update_changes_nothing(tmp_path):
    with SQLiteRegistry(tmp_path / "r.sqlite") as registry:
        registry.update(add=[record("keep")])
        unpicklable = record("new", payload=threading.Lock())
        with pytest.raises(TypeError, match="pickle"):
            registry.update(add=[record("other"), unpicklable], remove=[("keep", ())])
        assert [r.task_id for r in registry.records()] == ["keep"]


def test_a_file_that_is_not_a_registry_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("my precious notes, not a database\n" * 100)
    with pytest.raises(RegistryError, match="cannot read the task registry"):
        SQLiteRegistry(path)
    assert path.read_text().startswith("my precious notes")


def test_a_record_handed_out_cannot_be_changed_behind_the_registry(registry):
    # The memory registry hands out the records it keeps: were they mutable, a caller's
    # edit (a user's own recovery code, say) would change the registry's copy unseen,
    # and a resubmission would run with it.
    registry.update(add=[record("t", (0,), 1, "payload")])
    [kept] = list(registry.records())
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
        kept.attempts = 99  # type: ignore[misc]
    assert [r.attempts for r in registry.records()] == [kept.attempts]
