"""A study SIGKILLed mid-way (the process and its cluster) resumes: the rerun adds exactly
the missing runs, keeps the finished rows untouched, and results.csv never holds two rows
for one (cell, repetition)."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import load_study
from experiments.runner import plan_runs
from tests.experiments.conftest import write_tiny_study

ROOT = Path(__file__).resolve().parents[2]


def rows(folder: Path) -> list[dict[str, str]]:
    path = folder / "results.csv"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return list(csv.DictReader(text[: text.rfind("\n") + 1].splitlines()))


def study_process(study: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "experiments", "run", str(study), "--out",
                             str(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the study and every process of its session (its cluster's too)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and session_members(process.pid):
        time.sleep(0.2)
    left = session_members(process.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes {left} outlived the study's SIGKILL"


def session_members(session: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
                fields = stat.rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session and fields[0] not in (b"Z", b"X"):
                members.append(int(entry))
    return members


def test_a_study_killed_mid_way_loses_and_repeats_no_run(tmp_path):
    # Fault-free runs (the kill is the study's own): quick, and every run ends "completed".
    study_file = write_tiny_study(tmp_path, repetitions=4, rates="[0]")
    planned = {(run.cell.id, run.repetition) for run in plan_runs(load_study(study_file))}
    out = tmp_path / "out"
    first = study_process(study_file, out)
    try:
        deadline = time.monotonic() + 180
        while len(rows(out)) < 3 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, "the study ended before it could be killed mid-way"
    finally:
        kill_group(first)
    before = rows(out)
    assert 3 <= len(before) < len(planned), len(before)

    second = study_process(study_file, out)
    try:
        assert second.wait(timeout=300) in (0, 1)
    finally:
        kill_group(second)
    after = rows(out)
    keys = [(row["cell"], int(row["repetition"])) for row in after]
    assert len(keys) == len(set(keys)), "a (cell, repetition) has two rows"
    assert set(keys) == planned, "a planned run is missing"
    assert after[: len(before)] == before, "a finished run's row changed: it was run again"
    assert (out / "index.html").is_file()


@pytest.mark.parametrize("junk", [b"tiny,rate0-regnone,2,1", b"\n"])
def test_junk_after_the_rows_does_not_count_as_a_run(tmp_path, junk):
    from experiments.results import ResultsFile

    with ResultsFile(tmp_path):
        pass
    (tmp_path / "results.csv").open("ab").write(junk)
    with ResultsFile(tmp_path) as results:
        assert results.done() == set()
