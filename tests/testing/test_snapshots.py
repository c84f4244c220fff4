"""Snapshots of the watched paths: pure file-system logic, no Dask."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaos.testing import CheckError
from chaos.testing.snapshots import DirectoryWatch, changes, describe_changes


def test_created_changed_and_deleted_files_are_told_apart(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("same")
    (tmp_path / "edited.txt").write_text("before")
    (tmp_path / "gone.txt").write_text("x")
    watch = DirectoryWatch([tmp_path])
    before = watch.snapshot()
    (tmp_path / "edited.txt").write_text("after, longer")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "new.pdb").write_text("ATOM")
    found = changes(before, watch.snapshot())
    assert [(Path(c.path).name, c.change) for c in found] == [
        ("edited.txt", "changed"), ("gone.txt", "deleted"), ("new.pdb", "created")]
    assert describe_changes(found, tmp_path) == (
        "changed edited.txt (6 -> 13 bytes); deleted gone.txt; created sub/new.pdb (4 bytes)")


def test_a_rewrite_of_the_same_size_and_mtime_is_seen_by_its_hash(tmp_path: Path) -> None:
    target = tmp_path / "decoy.pdb"
    target.write_text("AAAA")
    stat = target.stat()
    watch = DirectoryWatch([tmp_path])
    before = watch.snapshot()
    target.write_text("BBBB")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    assert [c.change for c in changes(before, watch.snapshot())] == ["changed"]


def test_a_rewrite_with_the_same_content_is_a_write_all_the_same(tmp_path: Path) -> None:
    target = tmp_path / "decoy.pdb"
    target.write_text("AAAA")
    watch = DirectoryWatch([tmp_path])
    before = watch.snapshot()
    os.utime(target, ns=(0, 0))  # as a rewrite of the same bytes would: only mtime moves
    found = changes(before, watch.snapshot())
    assert describe_changes(found, tmp_path) == "rewrote decoy.pdb (same content)"


def test_dask_python_tool_and_virtualenv_folders_are_not_watched(tmp_path: Path) -> None:
    watch = DirectoryWatch([tmp_path])
    before = watch.snapshot()
    for folder in ("dask-scratch-space/worker-1", "dask-worker-space", "__pycache__", ".git",
                   ".pytest_cache", "env"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "file").write_text("x")
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr")
    assert changes(before, watch.snapshot()) == []


def test_a_file_can_be_watched_and_a_missing_path_is_refused(tmp_path: Path) -> None:
    single = tmp_path / "scores.json"
    single.write_text("{}")
    watch = DirectoryWatch([single])
    before = watch.snapshot()
    single.write_text('{"score": 1}')
    assert [c.change for c in changes(before, watch.snapshot())] == ["changed"]
    with pytest.raises(CheckError, match="does not exist: create it, or leave it out of watch="):
        DirectoryWatch([tmp_path / "missing"])


def test_too_many_files_is_refused_with_the_fix(tmp_path: Path) -> None:
    for i in range(6):
        (tmp_path / f"f{i}").write_text("x")
    with pytest.raises(CheckError, match="hold more than 5 files: run the check from a small"):
        DirectoryWatch([tmp_path], max_files=5).snapshot()
