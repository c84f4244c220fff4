"""results.csv: whole rows only, a torn row cut off, one runner per folder, no repeats."""

from __future__ import annotations

import pytest

from experiments import ResultsError
from experiments.results import COLUMNS, RESULTS_FILE, ResultsFile, read_results


def row(cell: str, repetition: int) -> dict:
    return {**{column: "" for column in COLUMNS}, "cell": cell, "repetition": repetition,
            "makespan": 1.5}


def test_rows_are_appended_and_known_as_done(tmp_path):
    with ResultsFile(tmp_path) as results:
        results.append(row("a", 0))
        results.append(row("b", 0))
        assert results.done() == {("a", 0), ("b", 0)}
    assert [r["cell"] for r in read_results(tmp_path / RESULTS_FILE)] == ["a", "b"]


def test_a_torn_last_row_is_cut_off_and_its_run_is_not_done(tmp_path):
    with ResultsFile(tmp_path) as results:
        results.append(row("a", 0))
    path = tmp_path / RESULTS_FILE
    with open(path, "ab") as handle:  # a row cut mid-write
        handle.write(b"tiny,b,0,12,0.5")
    assert [r["cell"] for r in read_results(path)] == ["a"]
    with ResultsFile(tmp_path) as results:
        assert results.done() == {("a", 0)}
        results.append(row("b", 0))
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(line.count(",") == len(COLUMNS) - 1 for line in lines)


def test_a_second_runner_is_refused(tmp_path):
    with ResultsFile(tmp_path), pytest.raises(ResultsError, match="another study runner"):
        ResultsFile(tmp_path).__enter__()


def test_a_results_file_of_other_columns_is_refused(tmp_path):
    (tmp_path / RESULTS_FILE).write_text("study,cell\nx,y\n")
    with pytest.raises(ResultsError, match="another version"):
        ResultsFile(tmp_path).__enter__()


def test_a_row_missing_a_column_is_refused(tmp_path):
    with ResultsFile(tmp_path) as results, pytest.raises(ResultsError, match="makespan"):
        results.append({"cell": "a", "repetition": 0})
