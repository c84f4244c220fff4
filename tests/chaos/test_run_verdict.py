"""`python -m chaos run` never calls a run valid without a verdict (issue 11): a checker
that raises fails the command with its error, and nothing says "valid"."""

from __future__ import annotations

import json

import pytest

from chaos.cli import main


def test_a_checker_that_raises_fails_the_run_command(tmp_path, monkeypatch):
    def broken_checker(*args, **kwargs):
        raise RuntimeError("the checker broke")

    monkeypatch.setattr("chaos.analysis.run_summary.check_history", broken_checker)
    with pytest.raises(RuntimeError, match="the checker broke"):
        main(["run", "--faults", "0", "--tasks", "2", "--steps", "1", "--out",
              str(tmp_path / "run"), "--timeout", "30"])
    summary = tmp_path / "run" / "summary.json"
    assert not summary.exists() or not json.loads(summary.read_text())["valid"]
