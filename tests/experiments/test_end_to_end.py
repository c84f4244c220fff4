"""A tiny study from its TOML to its report, on the suite's real 3-worker cluster:
real runs with Poisson SIGKILLs, every history checked, the simulator calibrated and
validated, recommendation.json, simulation.csv and a self-contained index.html."""

from __future__ import annotations

import csv
import json
import re

from experiments.results import COLUMNS


def test_every_run_has_one_checked_row(finished):
    study, out, summary, _ = finished
    rows = list(csv.DictReader((out / "results.csv").read_text().splitlines()))
    assert summary.ran == len(rows) == len(study.cells()) * study.repetitions == 4
    assert set(rows[0]) == set(COLUMNS)
    for row in rows:
        assert row["verdict"] in ("valid", "invalid", "hung")
        assert float(row["makespan"]) > 0 and 0 <= float(row["goodput"]) <= 1.0
        assert (out / "runs" / f"{row['cell']}-r{row['repetition']}" / "history.jsonl").is_file()
    faulty = [row for row in rows if float(row["preemption_rate"]) > 0]
    for row in faulty:  # the Poisson kills are wired in: each run got one, unless it
        # ended before the first arrival (a fast run on an idle machine)
        history = (out / "runs" / f"{row['cell']}-r{row['repetition']}" / "history.jsonl")
        events = [json.loads(line) for line in history.read_text().splitlines()]
        first = [e for e in events if e.get("fault_id") == "f0.0"]
        ended_first = [e for e in first if e["type"] == "fault-skipped"
                       and "ended before" in e.get("reason", "")]
        assert int(row["kills"]) >= 1 or ended_first, (row, first)
    assert sum(int(row["kills"]) for row in faulty) >= 1, faulty
    assert all("sudden kill -> sigkill" in row["harness_kinds"] for row in rows)
    # Exactly-once holds in every run. (A run past its time bound is "hung", which the
    # checker also counts; on a machine shared with other jobs that can happen, so the
    # bound is the study's business, not this test's.)
    for row in rows:
        for kind in ("lost", "duplicated", "unexpected", "corrupted"):
            assert f"{kind}=" not in row["violation_kinds"], row


def test_the_simulator_is_calibrated_and_validated_on_the_runs(finished):
    _, out, _, outcome = finished
    validation = json.loads((out / "validation.json").read_text())
    assert validation == outcome.validation
    assert len(validation["cells"]) == 4
    for cell in validation["cells"]:
        for key in ("makespan", "failure_probability"):
            assert {"measured", "predicted", "relative_error"} <= set(cell[key])
    assert validation["median_relative_error"] < 0.6  # a loose bound: 4 tiny runs
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["samples"]["restart"] >= 1  # measured, not the fallback
    rows = list(csv.DictReader((out / "simulation.csv").read_text().splitlines()))
    assert {row["mode"] for row in rows} == {"model", "harness"}


def test_the_recommendation_has_one_entry_per_rate(finished):
    study, out, _, _ = finished
    content = json.loads((out / "recommendation.json").read_text())
    assert content["study"] == "tiny" and "least expected makespan" in content["objective"]
    entries = content["recommendations"]
    assert [e["preemption_rate"] for e in entries] == list(study.preemption.rates)
    for entry in entries:
        assert {"settings", "expected_makespan", "failure_probability",
                "memory_bytes_per_worker", "why"} <= set(entry)
    assert entries[0]["settings"]["task_registry"] is None  # nothing to protect at rate 0


def test_the_report_is_one_self_contained_page(finished):
    _, out, _, outcome = finished
    page = outcome.report.read_text(encoding="utf-8")
    assert outcome.report == out / "index.html"
    assert page.count("data:image/png;base64,") >= 5
    assert not re.search(r"(src|href)=\"(https?:|//)", page)
    for anchor in ("recommendation", "makespan", "goodput", "failure", "pareto", "parity",
                   "limits"):
        assert f'id="{anchor}"' in page, anchor
