"""Fault-free runs start on warm workers: a worker that joined since the last run (a
nanny's restart after a kill) first gets one unrecorded fault-free run, so its imports
and first connections are not counted as the overhead of the next recorded run."""

from __future__ import annotations

from chaos import AtStep, Fault, FaultSchedule
from chaos.campaign import Configuration, plan_campaign, run_campaign
from chaos.harness import TargetConfig, make_target
from tests.campaign.kit import RUN_TIMEOUT, WORKLOAD

KILL = FaultSchedule((Fault("sigkill", AtStep(step=0, fraction=0.5, task="t1")),), seed=1)


def test_a_worker_that_joined_since_the_last_run_is_warmed_before_the_next(
        chaos_cluster, tmp_path):
    configuration = Configuration("dask-raw", TargetConfig())
    # Runs in this order: c000, s000 (its sigkill makes the nanny start a new worker),
    # then c001, which must not be the new worker's first run.
    plan = plan_campaign("ci", configurations=[configuration], schedules=[KILL], clean_runs=2,
                         workload=WORKLOAD, run_timeout=RUN_TIMEOUT)
    started: list[str] = []

    def counting(name: str):
        started.append(name)
        return make_target(name)

    result = run_campaign(plan, chaos_cluster, tmp_path, target_factory=counting)
    assert [run.spec.run_id for run in result.runs] == [
        "c000-dask-raw-scatter", "s000-dask-raw-scatter", "c001-dask-raw-scatter"]
    # One warm-up at the start, three recorded runs, one warm-up before c001.
    assert len(started) == 5, started
    # The killed process is not among the next run's, though its address may be (the
    # local backend's fixed ports): the new process there is the one warmed.
    killed = {(e["worker"], e["pid"]) for e in result.runs[1].history if e["type"] == "fault"}
    next_run = {(w["address"], w["pid"]) for w in result.runs[2].history[0]["workers"]}
    assert killed and not killed & next_run
    assert {address for address, _ in killed} <= {address for address, _ in next_run}
