"""The campaign catches bad systems, each with the right violation class, while the real
library passes the very same schedules (the control):

- the dask-raw baseline loses a task silently when the only holder of its input is
  SIGKILLed: flagged `lost`, and the `baseline_caught_losing` gate passes;
- a library that drops lost tasks without a word (PyRosettaCluster's KilledWorker
  behaviour): flagged `lost`, and the `silent_loss` gate fails naming it;
- a library with deduplication off: flagged `duplicated`, and the `exactly_once` gate
  fails naming it.

One small campaign (4 configurations x 4 schedules) serves every test of the module.
The real library's control runs without step_timeout; with a step_timeout it passes the
freeze schedule as well (its suppressed duplicates are counted, never delivered).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos import (
    AtStep,
    Configuration,
    Fault,
    FaultSchedule,
    InputHeld,
    ReplicaHolder,
    RunningWorker,
    finish_campaign,
    plan_campaign,
    run_campaign,
)
from chaos.analysis import GateThresholds
from chaos.cli.campaign import write_campaign_report
from chaos.harness import TargetConfig
from tests.campaign.broken import make_any_target
from tests.campaign.kit import RUN_TIMEOUT, WORKLOAD

# SIGKILL the worker holding t0's step-1 input (the only copy: no replicas).
KILL_THE_HOLDER = FaultSchedule((Fault("sigkill", InputHeld(step=1, task="t0"),
                                       ReplicaHolder()),), seed=1)
# Freeze the worker running t0's last step past step_timeout, so that a second attempt
# starts elsewhere and the first one finishes late.
FREEZE_PAST_TIMEOUT = FaultSchedule((Fault("freeze", AtStep(step=1, fraction=0.5, task="t0"),
                                           RunningWorker(), freeze_for=1.0),), seed=2)

# A holder's kill loses the input only while Dask has not yet copied it to the worker
# that runs the step (about 1 run in 8 it already has, measured): the schedule runs three
# times, and each run whose kill took data no other worker held must show the loss.
HOLDER_KILLS = (0, 2, 3)  # the positions of KILL_THE_HOLDER in the campaign's schedules
REGISTRY = TargetConfig(task_registry="memory")
SPECULATIVE = TargetConfig(task_registry="memory", step_timeout=0.3)
CONFIGURATIONS = (
    Configuration("dask-raw"),
    Configuration("resilience", REGISTRY),
    Configuration("resilience-drops-lost", REGISTRY),
    Configuration("resilience-no-dedup", SPECULATIVE),
)
REAL = "resilience-r0-memory-scatter"
DROPS = "resilience-drops-lost-r0-memory-scatter"
NO_DEDUP = "resilience-no-dedup-r0-memory-scatter-timeout0.3"


@pytest.fixture(scope="module")
def campaign(chaos_cluster, tmp_path_factory):
    plan = plan_campaign("ci", configurations=CONFIGURATIONS,
                         schedules=[KILL_THE_HOLDER, FREEZE_PAST_TIMEOUT, KILL_THE_HOLDER,
                                    KILL_THE_HOLDER], clean_runs=0,
                         workload=WORKLOAD, run_timeout=RUN_TIMEOUT)
    out = tmp_path_factory.mktemp("catching")
    result = run_campaign(plan, chaos_cluster, out, target_factory=make_any_target)
    return result, finish_campaign(result, thresholds=GateThresholds(),
                                   report=write_campaign_report)


@pytest.fixture(scope="module")
def outcome(campaign):
    return campaign[1]


def destructive_holder_kills(campaign, slug: str) -> list[int]:
    """The holder-kill runs of `slug` in which a step failed for its lost input or
    worker: where neither target resubmits. A kill that took data held nowhere else
    is not enough: it may take only inputs whose steps had already finished (a CI run
    saw one), and then there is nothing to lose."""
    result, _ = campaign
    runs = {run.run_id: run for run in result.runs}
    return [schedule for schedule in HOLDER_KILLS
            if any(e["type"] == "step-error" and e.get("cause") in ("lost-input", "killed-worker")
                   for e in runs[f"s{schedule:03d}-{slug}"].history)]


def found(outcome, slug: str, schedule: int) -> dict[str, int]:
    """Violations by class in one run: the configuration `slug` under schedule `schedule`."""
    run_id = f"s{schedule:03d}-{slug}"
    [run] = [r for r in outcome.summary["configurations"][slug]["failing"]
             if r["run_id"] == run_id] or [{"found": "no violations"}]
    if run["found"] == "no violations":
        return {}
    return {kind: int(n) for kind, n in (part.rsplit(" ", 1) for part in run["found"].split(", "))}


def found_in_holder_kills(outcome, slug: str) -> dict[str, int]:
    """Violations by class summed over the runs of `slug` under KILL_THE_HOLDER."""
    total: dict[str, int] = {}
    for schedule in HOLDER_KILLS:
        for kind, n in found(outcome, slug, schedule).items():
            total[kind] = total.get(kind, 0) + n
    return total


def gate(outcome, name: str):
    [result] = [g for g in outcome.gates.results if g.name == name]
    return result


def test_the_real_library_passes_both_schedules(outcome):
    summary = outcome.summary["configurations"][REAL]
    assert summary["failing_runs"] == 0, summary["failing"]


def test_the_baseline_is_caught_losing_a_task_silently(campaign, outcome):
    destructive = destructive_holder_kills(campaign, "dask-raw-scatter")
    for schedule in destructive:
        assert found(outcome, "dask-raw-scatter", schedule).get("lost", 0) >= 1, schedule
    if destructive:
        assert gate(outcome, "baseline_caught_losing").status == "pass"


def test_a_library_that_drops_lost_tasks_is_caught(campaign, outcome):
    destructive = destructive_holder_kills(campaign, DROPS)
    for schedule in destructive:
        assert set(found(outcome, DROPS, schedule)) == {"lost"}, schedule
    assert set(found_in_holder_kills(outcome, DROPS)) <= {"lost"}
    if not destructive:
        pytest.skip("no holder kill took data held nowhere else in this run (Dask had "
                    "copied every input already): nothing for the broken library to lose")
    silent_loss = gate(outcome, "silent_loss")
    assert silent_loss.status == "fail"
    assert f"{DROPS}: " in silent_loss.detail
    assert f"{REAL}: " not in silent_loss.detail  # the real library, same schedule: clean


def test_a_library_without_deduplication_is_caught(outcome):
    assert set(found(outcome, NO_DEDUP, 1)) == {"duplicated"}
    exactly_once = gate(outcome, "exactly_once")
    assert exactly_once.status == "fail"
    assert f"{NO_DEDUP}: " in exactly_once.detail
    assert not outcome.gates.passed


def test_every_failing_run_is_kept_with_a_working_replay_recipe(outcome):
    kept = set(outcome.kept_runs)
    for summary in outcome.summary["configurations"].values():
        for run in summary["failing"]:
            assert run["run_id"] in kept
            folder = Path(run["folder"])
            for name in ("history.jsonl", "schedule.json", "summary.json"):
                assert (folder / name).is_file(), folder / name
    html = (outcome.folder / "index.html").read_text(encoding="utf-8")
    assert f"python -m chaos replay {outcome.folder}/runs/s000-dask-raw-scatter/schedule.json" \
        in html
