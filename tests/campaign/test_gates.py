"""Gates on hand-made summaries: what passes, what fails, and what the failure says."""

from __future__ import annotations

import copy

import pytest

from chaos import ChaosError, GateThresholds, evaluate_gates, load_gate_thresholds
from chaos.judge import VIOLATION_KINDS


def configuration(target: str, *, lost: int = 0, duplicated: int = 0, hung: int = 0,
                  must_deliver_failing: int = 0, clean: float = 1.0, faulty: float = 2.0,
                  faulty_runs: int = 4, unexplained: int = 0) -> dict:
    violations = {kind: {"runs": 0, "count": 0} for kind in VIOLATION_KINDS}
    violations["reported-failed"] = {"runs": int(bool(unexplained)), "count": unexplained}
    violations["lost"] = {"runs": int(bool(lost)), "count": lost}
    violations["duplicated"] = {"runs": int(bool(duplicated)), "count": duplicated}
    violations["hung"] = {"runs": hung, "count": hung}
    return {
        "target": target, "faulty_runs": faulty_runs, "clean_runs": 2,
        "outcomes": {"valid": 6 - hung, "invalid": 0, "hung": hung},
        "must_deliver_failing_runs": must_deliver_failing, "violations": violations,
        "makespan": {"clean_median": clean, "faulty_median": faulty, "clean_mean": clean,
                     "faulty_mean": faulty},
        "overhead": {"point": faulty / clean - 1, "median_ratio": faulty / clean - 1},
        "fault_free_vs_baseline": clean / 0.8 - 1 if target != "dask-raw" else None,
        "failing": [{"run_id": f"s001-{target}"}] if lost or duplicated or hung else [],
    }


def summary(**configurations: dict) -> dict:
    return {"campaign": {"runs": 12, "planned_runs": 12, "stopped": None},
            "configurations": configurations}


def results(report) -> dict:
    return {result.name: result for result in report.results}


HEALTHY = summary(**{"resilience-r0-disk-scatter": configuration("resilience"),
                     "dask-raw-scatter": configuration("dask-raw", lost=3, clean=0.8)})


def test_a_healthy_campaign_passes_every_gate():
    report = evaluate_gates(HEALTHY)
    assert report.passed, report.render()
    gates = results(report)
    assert gates["baseline_caught_losing"].measured == 1
    assert gates["makespan_regression"].status == "skip"


def test_silent_loss_fails_naming_the_configuration_the_value_and_the_margin():
    bad = copy.deepcopy(HEALTHY)
    bad["configurations"]["resilience-r2-none-scatter"] = configuration(
        "resilience", lost=2, must_deliver_failing=1)
    report = evaluate_gates(bad)
    gates = results(report)
    assert not report.passed
    assert gates["silent_loss"].status == "fail"
    line = gates["silent_loss"].line()
    assert line.startswith("FAIL silent_loss: 2 outputs (threshold <= 0 outputs, off by 2 outputs)")
    assert "resilience-r2-none-scatter: 2" in line and "s001-resilience" in line
    assert gates["must_deliver_violations"].status == "fail"
    # The baseline's own losses never count against the system under test.
    assert "dask-raw" not in gates["silent_loss"].detail


def test_a_baseline_that_lost_nothing_means_the_campaign_was_too_weak():
    weak = copy.deepcopy(HEALTHY)
    weak["configurations"]["dask-raw-scatter"] = configuration("dask-raw", clean=0.8)
    gate = results(evaluate_gates(weak))["baseline_caught_losing"]
    assert gate.status == "fail" and "too weak" in gate.detail
    without = summary(**{"resilience-r0-disk-scatter": configuration("resilience")})
    assert results(evaluate_gates(without))["baseline_caught_losing"].status == "skip"


def test_hangs_duplicates_overhead_and_an_unfinished_campaign_fail():
    bad = summary(**{
        "resilience-r0-memory-scatter": configuration("resilience", hung=1, duplicated=1,
                                                      clean=1.0, faulty=9.0),
        "dask-raw-scatter": configuration("dask-raw", lost=1, clean=0.8),
    })
    bad["campaign"].update(runs=10, stopped="interrupted (Ctrl-C)")
    gates = results(evaluate_gates(bad))
    assert {name for name, g in gates.items() if g.status == "fail"} == {
        "campaign_complete", "hung_runs", "exactly_once", "makespan_overhead"}
    assert gates["makespan_overhead"].measured == pytest.approx(8.0)
    assert "off by +400%" in gates["makespan_overhead"].line()


def test_a_slowdown_of_every_configuration_fails_where_one_noisy_configuration_does_not():
    thresholds = GateThresholds(max_fault_free_overhead=0.5,
                                max_typical_fault_free_overhead=0.25)

    def gates_of(*overheads: float) -> dict:
        configurations = {f"resilience-c{i}": configuration("resilience", clean=0.8 * (1 + o))
                          for i, o in enumerate(overheads)}
        configurations["dask-raw-scatter"] = configuration("dask-raw", lost=3, clean=0.8)
        return results(evaluate_gates(summary(**configurations), thresholds))

    # A CI campaign's figures: one configuration's three fault-free runs met a busy host.
    noisy = gates_of(0.07, 0.08, 0.41, 0.06)
    assert noisy["fault_free_overhead"].status == "pass"
    assert noisy["typical_fault_free_overhead"].status == "pass"
    slower = gates_of(0.30, 0.32, 0.35, 0.29)  # no configuration alone beyond the noise
    assert slower["fault_free_overhead"].status == "pass"
    typical = slower["typical_fault_free_overhead"]
    assert typical.status == "fail" and typical.measured == pytest.approx(0.31)
    assert "4 configurations, +29% to +35%" in typical.detail


def test_a_recovery_that_stalls_fails_the_recovery_gate():
    stalled = copy.deepcopy(HEALTHY)
    stalled["configurations"]["resilience-r0-disk-scatter"]["recovery"] = {
        "to_deliver_max": 30.2, "to_deliver_p90": 0.5}
    gate = results(evaluate_gates(stalled))["recovery_time"]
    assert gate.status == "fail"
    assert gate.line().startswith("FAIL recovery_time: 30.2 s (threshold <= 15.0 s, off by 15.2 s)")
    assert "resilience-r0-disk-scatter" in gate.detail


def test_a_slow_recovery_from_one_fault_with_workers_fails_its_own_gate():
    # Issue 12's goal: p99 <= 1 s where the library and Dask answer for it. A worst of
    # 1.8 s waiting for a refill passes recovery_time; 1.2 s with workers does not pass.
    campaign = copy.deepcopy(HEALTHY)
    config = campaign["configurations"]["resilience-r0-disk-scatter"]
    config["recovery"] = {"to_deliver_max": 1.8, "isolated_p99": 0.6}
    gates = results(evaluate_gates(campaign))
    assert gates["recovery_time"].status == gates["isolated_recovery"].status == "pass"
    config["recovery"]["isolated_p99"] = 1.2
    gate = results(evaluate_gates(campaign))["isolated_recovery"]
    assert gate.line().startswith("FAIL isolated_recovery: 1.2 s (threshold <= 1.0 s")


def test_on_a_slow_host_raw_dask_s_own_recovery_in_the_campaign_sets_the_bar():
    # A host half as fast slowed raw Dask's isolated p99 to 0.8 s and the library's to
    # 1.2 s (clean-clone CI at 2162b15): the goal is for a host where Dask takes <= 0.4 s.
    campaign = copy.deepcopy(HEALTHY)
    campaign["configurations"]["resilience-r0-disk-scatter"]["recovery"] = {"isolated_p99": 1.2}
    raw = campaign["configurations"]["dask-raw-scatter"]
    raw["recovery"] = {"isolated_p99": 0.8}
    gate = results(evaluate_gates(campaign))["isolated_recovery"]
    assert gate.status == "pass" and gate.threshold == pytest.approx(2.0)
    assert ("2.5 x dask-raw-scatter's own 0.80 s in this campaign (above the 1 s goal)"
            in gate.detail)
    # Beyond 2.5 times raw Dask's is the library's own slowness: it fails.
    raw["recovery"] = {"isolated_p99": 0.45}
    gate = results(evaluate_gates(campaign))["isolated_recovery"]
    assert gate.line().startswith("FAIL isolated_recovery: 1.2 s (threshold <= 1.1 s")
    # On a fast host (raw Dask well under the goal / 2.5) the goal is the bar.
    raw["recovery"] = {"isolated_p99": 0.3}
    gate = results(evaluate_gates(campaign))["isolated_recovery"]
    assert gate.threshold == 1.0 and gate.detail.endswith("threshold the 1 s goal")


def test_the_scheduler_s_loss_has_a_recovery_gate_of_its_own():
    campaign = copy.deepcopy(HEALTHY)
    config = campaign["configurations"]["resilience-r0-disk-scatter"]
    config["recovery"] = {"to_deliver_max": 1.2}
    # A slow host's outage (a new scheduler, every worker registering again) took 10 s;
    # what came after it, the library's, 1.8 s.
    config["scheduler_recovery"] = {"to_deliver_max": 11.6, "working_max": 1.8}
    thresholds = GateThresholds(max_recovery_seconds=3.0, max_scheduler_recovery_seconds=5.0)
    gates = results(evaluate_gates(campaign, thresholds))
    assert gates["recovery_time"].status == gates["scheduler_recovery_time"].status == "pass"
    assert gates["recovery_time"].measured == 1.2
    assert gates["scheduler_recovery_time"].measured == 1.8
    config["scheduler_recovery"] = {"to_deliver_max": 30.2, "working_max": 26.2}
    gates = results(evaluate_gates(campaign, thresholds))
    assert gates["recovery_time"].status == "pass"
    assert gates["scheduler_recovery_time"].line().startswith(
        "FAIL scheduler_recovery_time: 26.2 s (threshold <= 5.0 s")


def test_informational_targets_are_never_gated():
    report = evaluate_gates(summary(**{
        "pyrosettacluster-r0-none-scatter": configuration("pyrosettacluster", lost=5),
        "dask-raw-scatter": configuration("dask-raw", lost=1)}))
    assert results(report)["silent_loss"].status == "skip"


def test_a_baseline_summary_catches_an_overhead_regression_beyond_the_tolerance():
    slower = copy.deepcopy(HEALTHY)
    slower["configurations"]["resilience-r0-disk-scatter"]["makespan"]["faulty_median"] = 3.2
    gate = results(evaluate_gates(slower, GateThresholds(regression_tolerance=0.5),
                                  baseline=HEALTHY))["makespan_regression"]
    assert gate.status == "fail"
    assert gate.measured == pytest.approx(0.6)
    assert "resilience-r0-disk-scatter (faulty median)" in gate.detail
    within = results(evaluate_gates(HEALTHY, baseline=slower))["makespan_regression"]
    assert within.status == "pass"


def test_thresholds_come_from_pyproject_and_bad_keys_are_named(tmp_path, monkeypatch):
    project = tmp_path / "pyproject.toml"
    project.write_text('[tool.chaos.gates]\nmax_hung_runs = 2\nbaseline_targets = ["x"]\n')
    monkeypatch.chdir(tmp_path / ".")
    loaded = load_gate_thresholds()
    assert (loaded.max_hung_runs, loaded.baseline_targets) == (2, ("x",))
    assert loaded.max_silent_loss == 0 and loaded.source == str(project)
    project.write_text("[tool.chaos.gates]\nmax_silent_los = 1\n")
    with pytest.raises(ChaosError, match=r"unknown key\(s\) \['max_silent_los'\]"):
        load_gate_thresholds(project)
    project.write_text("[tool.chaos.gates]\nmax_hung_runs = 0.5\n")
    with pytest.raises(ChaosError, match=r"max_hung_runs = 0\.5 must be an int >= 0"):
        load_gate_thresholds(project)


def test_the_projects_own_gates_parse():
    from pathlib import Path

    thresholds = load_gate_thresholds(Path(__file__).parents[2] / "pyproject.toml")
    assert thresholds.baseline_targets == ("dask-raw",)
    assert thresholds.max_silent_loss == 0


def test_a_loud_failure_the_faults_cannot_explain_fails_its_gate():
    """Issue 11: allowed failures are gated, in configurations that may fail loudly too."""
    report = evaluate_gates(summary(
        **{"resilience-r0-none-scatter": configuration("resilience", unexplained=8)}))
    gate = results(report)["unexplained_failures"]
    assert gate.status == "fail" and gate.measured == 8
    assert "resilience-r0-none-scatter: 8" in gate.detail


def test_a_campaign_that_aimed_at_every_cell_fails_where_its_faults_missed_many():
    """Issue 11: the ci profile's coverage schedules must hit the cells they aim at."""
    def covered(config: dict, hit: int, missing: list[str]) -> dict:
        return {**config, "coverage": {"cells": 36, "covered": hit, "missing": missing}}

    aimed = copy.deepcopy(HEALTHY)
    aimed["campaign"]["aimed_at_every_cell"] = True
    configs = aimed["configurations"]
    configs["resilience-r0-disk-scatter"] = covered(
        configs["resilience-r0-disk-scatter"], 35, ["sigkill @ input holder"])
    configs["dask-raw-scatter"] = covered(configs["dask-raw-scatter"], 5, [])  # not gated
    assert results(evaluate_gates(aimed))["aimed_coverage"].status == "pass"

    configs["resilience-r2-none-scatter"] = covered(
        configuration("resilience"), 30, ["retire @ input holder", "exit @ between steps"])
    gate = results(evaluate_gates(aimed))["aimed_coverage"]
    assert gate.status == "fail" and gate.measured == pytest.approx(30 / 36)
    assert "resilience-r2-none-scatter" in gate.detail and "retire @ input holder" in gate.detail

    aimed["campaign"]["aimed_at_every_cell"] = False  # drawn schedules: reported only
    assert results(evaluate_gates(aimed))["aimed_coverage"].status == "skip"
