"""A campaign whose cluster stops reporting results goes on, on a fresh cluster, and
says so (chaos.campaign.renewal)."""

from __future__ import annotations

from chaos import ChaosCluster
from chaos.campaign import (
    Configuration,
    RenewableCluster,
    finish_campaign,
    plan_campaign,
    run_campaign,
)
from chaos.harness import TargetConfig
from chaos.harness import cluster as cluster_module
from tests.campaign.kit import RUN_TIMEOUT, WORKLOAD
from tests.chaos.kit import stop_writing_to_the_client


def test_a_campaign_whose_cluster_goes_deaf_goes_on_on_a_fresh_one(tmp_path, monkeypatch):
    # A nightly's LocalCluster stopped telling its client of results, and a hard reset
    # did not mend it: the campaign ended there, without a report. Here the first
    # cluster's scheduler stops writing to the client, and its hard reset does nothing.
    monkeypatch.setattr(cluster_module, "RESULT_WAIT", 1.0)
    plan = plan_campaign("ci", configurations=[Configuration("dask-raw", TargetConfig())],
                         schedules=[], clean_runs=2, workload=WORKLOAD,
                         run_timeout=RUN_TIMEOUT)
    started: list[ChaosCluster] = []

    def start() -> ChaosCluster:
        cluster = ChaosCluster.local(3)
        if not started:
            cluster.hard_reset = lambda *args, **kwargs: None  # type: ignore[method-assign]
            cluster.client.run_on_scheduler(stop_writing_to_the_client, cluster.client.id)
        started.append(cluster)
        return cluster

    with RenewableCluster(start) as clusters:
        result = run_campaign(plan, clusters.cluster, tmp_path, renew=clusters.renew)
    assert result.stopped is None
    assert [run.spec.run_id for run in result.runs] == [spec.run_id for spec in plan.runs()]
    [why] = result.renewals
    assert why.startswith(f"before {plan.runs()[0].run_id}: ") and "trivial task" in why, why
    assert len(started) == 2 and started[0].client.status == "closed"
    outcome = finish_campaign(result)
    assert outcome.summary["campaign"]["cluster_renewals"] == [why]
    [complete] = [g for g in outcome.gates.results if g.name == "campaign_complete"]
    assert complete.status == "pass" and "started afresh 1 time(s)" in complete.detail


class _Closable:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_a_fresh_cluster_that_does_not_start_stops_the_campaign_rather_than_crash_it():
    # run_campaign then stops with the reason, and the report is still written.
    starts: list[int] = []

    def start() -> _Closable:
        starts.append(1)
        if len(starts) > 1:
            raise OSError("no free ports")
        return _Closable()

    clusters = RenewableCluster(start)  # type: ignore[arg-type]
    first = clusters.cluster
    assert clusters.renew("before s000: deaf") is None
    assert first.closed and clusters.renewals == []
