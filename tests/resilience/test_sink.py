"""The output folder ends with every output exactly once, whichever step of a delivery a
kill interrupted. Each test leaves the folder and registry exactly as a SIGKILL at that
point would (the sink's steps run, the commit does not), then reopens the run."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import tracemalloc
from pathlib import Path
from typing import cast

import pytest

from resilience import Output
from resilience.durable import DurableRun, open_durable_run
from resilience.errors import OutputError
from resilience.registry import Delivery
from resilience.sink import SCOREFILE, _score_line, load_output, output_name
from tests.resilience.kit import logged


def protocol(payload, **_):
    return payload


def open_run(tmp_path: Path) -> DurableRun:
    return open_durable_run(tmp_path / "out" / "registry.sqlite", None, tmp_path / "out",
                            [protocol], iter([]), start_afresh=False)


def outputs(*task_ids: str) -> list[tuple[Output, dict, float]]:
    return [(Output(task_id, (0,), {"pose": task_id}, 1, (1,)), {"task_id": task_id}, 0.0)
            for task_id in task_ids]


def deliver(run: DurableRun, batch: list[tuple[Output, dict, float]]) -> None:
    """One whole delivery, as the run loop makes it."""
    assert run.sink is not None
    entries = run.sink.write(batch)
    run.registry.update(delivered=entries, progress=run.sink.committed_progress())


def folder_state(tmp_path: Path) -> tuple[list[str], list[tuple[str, list[int]]]]:
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("registry.sqlite"))
    scores = out / SCOREFILE
    text = scores.read_text() if scores.exists() else ""
    lines = [json.loads(line) for line in text.splitlines()]
    return names, [(line["task_id"], line["index"]) for line in lines]


def test_a_scorefile_line_times_its_output_as_precisely_as_its_stamps():
    # started_at and delivered_at are given to the millisecond; seconds, their
    # difference, must be too, or a reader comparing the three finds them disagree.
    line = json.loads(_score_line(Output("t", (0,), "v", 1, (1,)), "t.0.pkl", {},
                                  started_at=100.0, now=101.2344))
    assert (line["started_at"], line["delivered_at"], line["seconds"]) == (100.0, 101.234,
                                                                            1.234)


def test_a_kill_between_the_renames_and_the_ledger_commit_leaves_nothing_behind(tmp_path):
    run = open_run(tmp_path)
    deliver(run, outputs("a"))
    assert run.sink is not None
    run.sink.write(outputs("b", "c"))  # files linked, scores appended: then the kill
    run.registry.close()

    with logged("resilience.durable") as lines:
        reopened = open_run(tmp_path)

    assert any("removed 2 output file(s) an interrupted delivery left uncommitted" in line
               for line in lines), lines

    assert folder_state(tmp_path) == (["a.0.pkl", SCOREFILE], [("a", [0])])
    assert reopened.registry.is_delivered([("b", (0,)), ("a", (0,))]) == [False, True]
    deliver(reopened, outputs("b", "c"))  # the redone steps deliver them once
    assert folder_state(tmp_path) == (
        ["a.0.pkl", "b.0.pkl", "c.0.pkl", SCOREFILE], [("a", [0]), ("b", [0]), ("c", [0])])
    assert load_output(tmp_path / "out" / "c.0.pkl") == {"pose": "c"}


def test_a_kill_mid_write_leaves_no_temporary_file(tmp_path):
    run = open_run(tmp_path)
    name = output_name("a", (0,))
    run.registry.stage_outputs([Delivery("a", (0,), 1, file=name, score="{}")])  # staged ...
    temporary = tmp_path / "out" / f".{name}.tmp"
    temporary.write_bytes(b"half a pick")  # ... and half written: then the kill
    run.registry.close()

    open_run(tmp_path)

    assert not temporary.exists()
    assert folder_state(tmp_path) == ([], [])


def test_a_kill_mid_scorefile_append_cuts_the_partial_line(tmp_path):
    run = open_run(tmp_path)
    deliver(run, outputs("a"))
    with open(tmp_path / "out" / SCOREFILE, "a") as scores:
        scores.write('{"task_id": "b", "ind')  # a torn append: then the kill
    run.registry.close()

    open_run(tmp_path)

    assert folder_state(tmp_path) == (["a.0.pkl", SCOREFILE], [("a", [0])])


def test_a_scorefile_cut_short_outside_the_library_is_rebuilt_from_the_ledger(tmp_path):
    run = open_run(tmp_path)
    deliver(run, outputs("a", "b"))
    run.registry.close()
    (tmp_path / "out" / SCOREFILE).write_text("")

    open_run(tmp_path)

    assert folder_state(tmp_path)[1] == [("a", [0]), ("b", [0])]


def test_a_file_that_is_not_ours_is_never_overwritten(tmp_path):
    run = open_run(tmp_path)
    theirs = tmp_path / "out" / output_name("a", (0,))
    theirs.write_text("someone else's file")

    with pytest.raises(OutputError, match="not in this run's ledger"):
        deliver(run, outputs("a"))

    assert theirs.read_text() == "someone else's file"
    assert not list((tmp_path / "out").glob(".*.tmp"))
    run.registry.close()
    open_run(tmp_path)  # and a restart's reconcile does not take it for ours
    assert theirs.read_text() == "someone else's file"


def test_a_file_that_appears_during_the_write_is_left_alone_and_unstaged(tmp_path):
    # Between write()'s check and the link someone else's file appeared: the delivery
    # fails, and the entry is unstaged so that a restart does not remove that file.
    run = open_run(tmp_path)
    assert run.sink is not None
    entry = Delivery("a", (0,), 1, file=output_name("a", (0,)), score="{}")
    run.registry.stage_outputs([entry])  # as write() does after its check
    theirs = tmp_path / "out" / output_name("a", (0,))
    theirs.write_text("someone else's file")

    with pytest.raises(OutputError, match="not in this run's ledger"):
        run.sink._write_file(entry, {"pose": "a"})

    assert not list((tmp_path / "out").glob(".*.tmp"))
    run.registry.close()
    open_run(tmp_path)
    assert theirs.read_text() == "someone else's file"


def test_a_scorefile_line_keeps_its_times_to_the_millisecond(tmp_path):
    run = open_run(tmp_path)
    assert run.sink is not None
    [entry] = run.sink.write([(Output("a", (0,), "pose", 1, (1,)), {}, 1_700_000_000.123456)])
    line = json.loads(cast(str, entry.score))
    assert line["started_at"] == 1_700_000_000.123


def test_writing_an_output_does_not_copy_it(tmp_path):
    # An output holding a large array (a pose's coordinates, say) is written from where
    # it lies: pickle protocol 5 writes the array's buffer as it is, where protocol 4
    # first copies it whole, so a 20 MB output would briefly take 40 MB.
    numpy = pytest.importorskip("numpy")
    run = open_run(tmp_path)
    assert run.sink is not None
    value = {"coordinates": numpy.ones(20_000_000, dtype=numpy.uint8)}
    tracemalloc.start()
    try:
        run.sink.write([(Output("big", (0,), value, 1, (1,)), {}, 0.0)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"writing a 20 MB output took {peak / 1e6:.0f} MB more memory"
    written = load_output(tmp_path / "out" / output_name("big", (0,)))
    assert written["coordinates"].sum() == 20_000_000


@contextlib.contextmanager
def soft_limit(kind: int, value: int):
    """This process's soft `kind` limit (a `resource.RLIMIT_*`) at `value`, until exit."""
    soft, hard = resource.getrlimit(kind)
    resource.setrlimit(kind, (value, hard))
    try:
        yield
    finally:
        resource.setrlimit(kind, (soft, hard))


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Files of this process cannot grow past `limit` bytes (RLIMIT_FSIZE): a disk
    that fills, for this process only. Writes past it fail with EFBIG."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the default kills us
    try:
        with soft_limit(resource.RLIMIT_FSIZE, limit):
            yield
    finally:
        signal.signal(signal.SIGXFSZ, handler)


def test_a_disk_too_full_for_an_output_fails_the_delivery_and_a_rerun_writes_it(tmp_path):
    run = open_run(tmp_path)
    deliver(run, outputs("a"))
    assert run.sink is not None
    big = [(Output("b", (0,), b"x" * 2_000_000, 1, (1,)), {"task_id": "b"}, 0.0)]

    with file_size_limit(1_000_000), pytest.raises(
            OutputError, match=r"could not write the output .*b\.0\.pkl \(File too large\)"):
        run.sink.write(big)

    assert not list((tmp_path / "out").glob(".*.tmp"))
    assert folder_state(tmp_path) == (["a.0.pkl", SCOREFILE], [("a", [0])])
    run.registry.close()
    deliver(open_run(tmp_path), big)
    assert load_output(tmp_path / "out" / "b.0.pkl") == b"x" * 2_000_000


def no_file_can_be_opened() -> contextlib.AbstractContextManager[None]:
    """This process cannot open another file (RLIMIT_NOFILE at 0: files open stay open).
    A limit at the lowest free fd let an open through in CI once: another thread (the
    shared cluster's scheduler runs in this process) closed a lower fd in between."""
    return soft_limit(resource.RLIMIT_NOFILE, 0)


def test_an_output_file_that_cannot_even_be_created_fails_the_delivery_clearly(tmp_path):
    run = open_run(tmp_path)
    deliver(run, outputs("a"))
    assert run.sink is not None

    # No temporary file to clean up: the error says what failed, not that it is missing.
    with no_file_can_be_opened(), pytest.raises(
            OutputError, match=r"could not write the output .*b\.0\.pkl \(Too many open files\)"):
        run.sink.write(outputs("b"))


def test_a_disk_too_full_for_the_scorefile_leaves_no_partial_line(tmp_path):
    run = open_run(tmp_path)
    deliver(run, outputs("a"))
    assert run.sink is not None
    scores = tmp_path / "out" / SCOREFILE
    before = scores.read_bytes()

    with file_size_limit(len(before) + 5), pytest.raises(
            OutputError, match=r"could not append to .*scores\.json \(File too large\)"):
        run.sink._append_scores(['{"task_id": "b", "index": [0]}'])  # 5 bytes fit

    assert scores.read_bytes() == before


@pytest.mark.parametrize(("task_id", "name"), [
    ("plain-id_1", "plain-id_1.0.pkl"),
    (7, "7.0.pkl"),
    ("7", None),  # an int-like str must not collide with the int
    # An unsafe id is hashed; the exact name is part of the durable format: a run
    # resumed by a later version must find the files an earlier one wrote.
    ("a/b", "~f5effa31772a3689cb11.0.pkl"),
    ("../escape", None),
    ("x" * 65, None),
])
def test_output_names_are_safe_and_never_collide(task_id, name):
    made = output_name(task_id, (0,))
    if name is not None:
        assert made == name
    else:
        assert made.startswith("~") and "/" not in made
    assert os.path.basename(made) == made

