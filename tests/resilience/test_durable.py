"""A durable run (task_registry="disk" with a registry_path or output_path) resumes where
it stopped, refuses to resume as another run, and delivers each output once across
sessions. These tests stop a run by closing its generator; test_resume kills real
client processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from distributed import get_worker

from resilience import ConfigError, RegistryError, ResilientCluster, TaskFailures
from resilience.durable import open_durable_run
from resilience.sink import SCOREFILE, load_output
from resilience.sqlite_registry import SQLiteRegistry
from resilience.status import format_status, run_status
from tests.resilience.kit import wait_until


def double(payload, *, seed, **_):
    return [payload * 2 + seed, payload * 2 + seed + 1]


def add_seed(payload, *, seed, **_):
    return payload + seed


def fail_odd(payload, *, seed, **_):
    if seed % 2:
        raise ValueError(f"seed {seed} is odd")
    return payload


def tasks(count, start=0):
    return ({"task_id": f"t{i}", "seed": i} for i in range(start, count))


def durable(client, output, task_list, **settings):
    return ResilientCluster(client, task_list, input=1, task_registry="disk",
                            output_path=str(output), **settings)


def files(output: Path) -> set[str]:
    return {p.name for p in output.glob("*.pkl")}


def test_a_finished_run_rerun_redoes_nothing(client, tmp_path):
    output = tmp_path / "out"
    first = durable(client, output, tasks(5)).distribute([double, add_seed])
    assert first.delivered == 10

    again = durable(client, output, tasks(5)).distribute([double, add_seed])

    assert (again.delivered, again.previously_delivered, again.attempts) == (0, 10, 0)
    assert len(files(output)) == 10
    assert len((output / SCOREFILE).read_text().splitlines()) == 10
    assert load_output(output / "t3.1-0.pkl") == (1 * 2 + 3 + 1) + 3


def add_seed_slowly_after_two(payload, *, seed, **_):
    time.sleep(0 if seed < 2 else 0.5)  # tasks 0 and 1 finish while the others still run
    return payload + seed


def test_a_stopped_run_resumes_its_unfinished_steps_without_charging_them(client, tmp_path):
    output = tmp_path / "out"
    chain = [double, add_seed_slowly_after_two]
    run = durable(client, output, tasks(6), max_in_flight=4)
    outputs = run.generate(chain)
    next(outputs)
    outputs.close()  # the client stops: the steps in flight stay in the registry
    # With an output folder, a batch is on disk before its first output is yielded.
    on_disk = len(files(output))
    left = run_status(output)
    assert on_disk >= 1 and left["steps_in_flight"] > 0
    # Each step left in flight was on its first attempt, and says so.
    assert left["attempts"]["in_flight"] == {1: left["steps_in_flight"]}

    resumed = durable(client, output, tasks(6), max_in_flight=4)
    summary = resumed.distribute(chain)

    assert summary.previously_delivered == on_disk
    assert summary.delivered == 12 - on_disk
    assert {o.attempts for o in summary.outputs} == {1}  # the interruption cost no attempt
    assert len(files(output)) == 12
    status = run_status(output)
    assert (status["outputs_delivered"], status["steps_in_flight"]) == (12, 0)


def add_seed_slowly_first(payload, *, seed, **_):
    time.sleep(0.5 if seed == 0 else 0)  # the first task admitted is the last to finish
    return payload + seed


def test_the_first_step_admitted_is_resumed_when_it_was_left_unfinished(client, tmp_path):
    # The registry's first row (seq 1) is the one left over: resumption pages from the
    # start of the registry, not from the second row.
    output = tmp_path / "out"
    run = durable(client, output, tasks(4))
    outputs = run.generate(add_seed_slowly_first)
    next(outputs)
    outputs.close()
    assert "t0.0.pkl" not in files(output)

    summary = durable(client, output, tasks(4)).distribute(add_seed_slowly_first)

    assert summary.previously_delivered + summary.delivered == 4
    assert files(output) == {f"t{i}.0.pkl" for i in range(4)}
    # t0's interrupted first attempt is not charged: its resumed attempt is its first.
    assert "t0" in {o.task_id for o in summary.outputs}
    assert {o.attempts for o in summary.outputs} == {1}


def add_seed_slowly_when_odd(payload, *, seed, **_):
    time.sleep(0.5 if payload % 2 else 0)  # the second lineage of `double` is the slow one
    return payload + seed


def shared_inputs(dask_scheduler=None) -> list[str]:
    """The scheduler's keys of runs' shared inputs (scattered: no transition logs them)."""
    return [str(key) for key in dask_scheduler.tasks if str(key).startswith("rs-all-")]


KILLED_WHILE_STARTING = """
import os, signal, sys
from pathlib import Path
from resilience.durable import open_durable_run
from tests.resilience.test_durable import add_seed, double
output = Path(sys.argv[1])
open_durable_run(output / "registry.sqlite", None, output, [double, add_seed], iter(()),
                 False, initial_input=1)
os.kill(os.getpid(), signal.SIGKILL)  # before its run loop wrote anything
"""


def test_a_session_killed_as_it_started_is_resumed_with_its_initial_input(client, tmp_path):
    # The registry once got the run's fingerprints at opening and its initial input only
    # when the run loop started: a head node killed in between left a run no later
    # session could resume ("holds no initial input").
    output = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_STARTING, str(output)],
                            cwd=Path(__file__).parents[2], capture_output=True, text=True,
                            timeout=60)
    assert killed.returncode == -9, killed.stderr

    summary = durable(client, output, tasks(3)).distribute([double, add_seed])

    assert summary.delivered == 6 and summary.previously_delivered == 0
    assert sorted(load_output(output / name) for name in files(output)) == [
        2, 3, 4, 5, 6, 7]  # input 1: double gives 2+seed and 3+seed, then + seed


def test_a_resumed_run_with_no_first_step_left_does_not_place_the_initial_input(
        client, tmp_path):
    # The initial input is every step 0's: a session with only later steps to run must
    # not scatter it (a pose of megabytes) for nothing.
    output = tmp_path / "out"
    chain = [double, add_seed_slowly_when_odd]
    outputs = durable(client, output, tasks(1)).generate(chain)
    next(outputs)  # lineage 0 delivered; lineage 1's step 1 still runs
    outputs.close()
    wait_until(lambda: not client.run_on_scheduler(shared_inputs), timeout=5,
               what="the first session's shared input to be released")
    seen: list[str] = []
    stop = threading.Event()

    def look() -> None:
        while not stop.wait(0.01):
            seen.extend(client.run_on_scheduler(shared_inputs))

    looking = threading.Thread(target=look, daemon=True)
    looking.start()
    try:
        summary = durable(client, output, tasks(1)).distribute(chain)
    finally:
        stop.set()
        looking.join(timeout=10)

    assert (summary.previously_delivered, summary.delivered) == (1, 1)
    assert seen == []


def add_seed_slowly_at_first(payload, *, seed, **_):
    if get_worker().get_current_task().endswith("-a1"):
        time.sleep(0.8)  # past step_timeout: a second attempt is submitted
    return payload + seed


def test_a_step_submitted_again_has_its_attempts_written_to_the_registry(client, tmp_path):
    # A resumed run charges a step the attempts it already had: the registry must know.
    output = tmp_path / "out"
    written = []

    def on_event(event):
        if type(event).__name__ == "StepSubmitted" and event.attempt == 2:
            with sqlite3.connect(output / "registry.sqlite") as db:
                written.extend(db.execute("SELECT attempts FROM steps").fetchall())

    summary = durable(client, output, tasks(1), step_timeout=0.3,
                      on_event=on_event).distribute(add_seed_slowly_at_first)

    assert summary.attempts == 2 and written == [(2,)]
    time.sleep(0.6)  # let the first attempt's thread finish before the next test


def test_more_tasks_appended_to_the_list_are_run_on_resume(client, tmp_path):
    output = tmp_path / "out"
    durable(client, output, tasks(3)).distribute(add_seed)

    summary = durable(client, output, tasks(5)).distribute(add_seed)

    assert (summary.previously_delivered, summary.delivered) == (3, 2)
    assert files(output) == {f"t{i}.0.pkl" for i in range(5)}


def test_resuming_with_other_tasks_is_refused(client, tmp_path):
    output = tmp_path / "out"
    durable(client, output, tasks(4)).distribute(add_seed)

    with pytest.raises(RegistryError, match=r"other tasks: the ids .* of its first 4"):
        durable(client, output, tasks(5, start=1)).distribute(add_seed)
    with pytest.raises(RegistryError, match="it has only 2 task"):
        durable(client, output, tasks(2)).distribute(add_seed)
    assert len(files(output)) == 4


def test_resuming_with_other_protocols_is_refused_unless_started_afresh(client, tmp_path):
    output = tmp_path / "out"
    durable(client, output, tasks(3)).distribute([double, add_seed])

    with pytest.raises(RegistryError, match=r"other protocols .*double, .*add_seed"):
        durable(client, output, tasks(3)).distribute([add_seed, double])
    summary = durable(client, output, tasks(3), start_afresh=True).distribute(add_seed)

    assert summary.delivered == 3
    [old] = tmp_path.glob("out.replaced-*")  # moved aside, not deleted
    assert len(files(old)) == 6
    assert (old / "registry.sqlite").exists() and (old / "registry.sqlite.key").exists()
    assert files(output) == {"t0.0.pkl", "t1.0.pkl", "t2.0.pkl"}


def test_starting_afresh_twice_in_one_second_keeps_both_old_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: ".replaced-20261126-000000")
    output = tmp_path / "out"
    for _ in range(3):
        run = open_durable_run(output / "registry.sqlite", None, output, [double], iter(()),
                               start_afresh=True)
        run.registry.close()

    old = sorted(path.name for path in tmp_path.glob("out.replaced-*"))
    assert old == ["out.replaced-20261126-000000", "out.replaced-20261126-000000-2"]
    assert all((tmp_path / name / "registry.sqlite").exists() for name in old)


def test_failed_tasks_stay_failed_and_are_reported_again_on_resume(client, tmp_path):
    output = tmp_path / "out"
    with pytest.raises(TaskFailures) as first:
        durable(client, output, tasks(4)).distribute(fail_odd)
    assert set(first.value.failed) == {"t1", "t3"}

    with pytest.raises(TaskFailures) as again:
        durable(client, output, tasks(4)).distribute(fail_odd)

    assert set(again.value.failed) == {"t1", "t3"}
    assert "(in an earlier session)" in again.value.failed["t1"]
    assert again.value.summary.attempts == 0  # nothing was run again
    status = run_status(output)
    assert status["tasks_failed"] == 2 and "seed 1 is odd" in format_status(status)


def test_a_repeated_task_id_in_a_generator_is_refused_after_the_rest_ran(client, tmp_path):
    output = tmp_path / "out"
    repeated = ({"task_id": name, "seed": 0} for name in ["a", "b", "a", "c"])
    run = durable(client, output, repeated)

    with pytest.raises(ConfigError, match="task_id 'a' at position 2 repeats"):
        run.distribute(add_seed)
    assert files(output) == {"a.0.pkl", "b.0.pkl"}


def test_the_scorefile_has_one_line_per_output_with_its_scalar_kwargs(client, tmp_path):
    output = tmp_path / "out"
    task_list = [{"task_id": "x", "seed": 2, "weights": [1, 2], "label": "alpha"}]
    durable(client, output, task_list).distribute(double)

    raw = (output / SCOREFILE).read_text().splitlines()
    lines = [json.loads(line) for line in raw]
    # Canonical JSON (sorted keys): a task's line reads the same whatever the order of
    # its kwargs, so two runs' scorefiles can be compared line by line.
    assert raw == [json.dumps(line, sort_keys=True) for line in lines]

    assert [(line["task_id"], line["index"], line["file"]) for line in lines] == [
        ("x", [0], "x.0.pkl"), ("x", [1], "x.1.pkl")]
    assert lines[0]["kwargs"] == {"task_id": "x", "seed": 2, "label": "alpha"}  # no list
    assert lines[0]["attempts"] == 1 and lines[0]["seconds"] >= 0


def test_a_registry_path_alone_resumes_too(client, tmp_path):
    path = tmp_path / "run.sqlite"
    run = ResilientCluster(client, tasks(6), input=1, task_registry="disk",
                           registry_path=str(path), max_in_flight=2)
    outputs = run.generate(add_seed)
    next(outputs)
    outputs.close()

    rest = ResilientCluster(client, tasks(6), input=1, task_registry="disk",
                            registry_path=str(path)).distribute(add_seed)

    # Without an output folder, delivery is at least once: the output the consumer took
    # before the stop was committed when it asked for the next one, which it never did.
    assert sorted(o.task_id for o in rest.outputs) == [f"t{i}" for i in range(6)]
    with SQLiteRegistry(path) as registry:
        assert registry.counts()["outputs_delivered"] == 6


def test_the_status_command_reads_a_run_and_refuses_a_tampered_one(client, tmp_path):
    output = tmp_path / "out"
    durable(client, output, tasks(3)).distribute(double)
    command = [sys.executable, "-m", "resilience", "status", str(output)]

    shown = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "outputs delivered:  6" in shown.stdout
    assert "state:              finished" in shown.stdout

    with sqlite3.connect(output / "registry.sqlite") as db:
        db.execute("UPDATE meta SET value=CAST('999' AS BLOB) WHERE name='admitted'")
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "was altered: admitted" in refused.stderr
