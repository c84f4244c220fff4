"""Which run folders a campaign keeps once its runs are done."""

from __future__ import annotations

from pathlib import Path

from chaos import Configuration, FaultSchedule, RunSpec, check_history, plan_campaign
from chaos.campaign import CampaignResult, CampaignRun
from chaos.campaign.folder import SLOW_RECOVERY, prune_runs
from chaos.harness import TargetConfig
from tests.checker.histories import HistoryBuilder, one_output_each


def a_valid_run(out: Path, number: int, recovery: float) -> CampaignRun:
    """A run whose killed step is resubmitted and delivered `recovery` s after the kill."""
    history = HistoryBuilder(task_registry="memory", run_id=f"r{number}")
    history.submit("a")
    killed = history.invoke("a", worker=0)
    history.fault(worker=0)
    history.outcome(killed, "info")
    history.wait(recovery)
    history.submit("a", attempt=2, reason="lost-input")
    history.execute("a", worker=1, attempt=2)
    history.deliver("a", attempts=2)
    history.end()
    verdict = check_history(history.events, one_output_each("a"))
    assert verdict.valid
    spec = RunSpec(Configuration("resilience", TargetConfig(task_registry="memory")),
                   FaultSchedule(), number)
    folder = out / "runs" / spec.run_id
    folder.mkdir(parents=True)
    return CampaignRun(spec, tuple(history.events), verdict, folder, 1.0, 1.0)


def test_a_valid_run_that_recovered_slowly_is_kept_to_look_at(tmp_path):
    # Issue 12: a nightly's worst recovery (30 s, failing the recovery gate) came from a
    # valid run whose folder was removed with the other passing ones: nothing to replay.
    slow = a_valid_run(tmp_path, 0, recovery=SLOW_RECOVERY + 1)
    quick = a_valid_run(tmp_path, 1, recovery=0.2)
    plan = plan_campaign("ci", keep_passing=0)
    result = CampaignResult(plan, (slow, quick), tmp_path, 0.0, 1.0)

    pruned = prune_runs(result)

    assert [run.folder is not None for run in pruned.runs] == [True, False]
    assert slow.folder.is_dir() and not quick.folder.exists()
