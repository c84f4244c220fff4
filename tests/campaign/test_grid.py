"""The grid: which configurations a campaign runs, and what it leaves out and why."""

from __future__ import annotations

import pytest

from chaos import ChaosError, FaultSchedule, build_grid, parse_grid, plan_campaign
from chaos.campaign import Configuration
from chaos.harness import TargetConfig


def test_the_full_grid_is_the_libraries_17_configurations_plus_the_baseline():
    grid = build_grid(["resilience", "dask-raw"])
    slugs = [c.slug for c in grid.configurations]
    assert len(slugs) == len(set(slugs)) == 18
    # step_timeout and max_attempts matter with a registry: one extra cell each.
    assert "resilience-r0-memory-scatter-timeout0.5" in slugs
    assert "resilience-r0-disk-scatter-attempts2" in slugs
    assert slugs.count("dask-raw-scatter") == 1
    inline = [c for c in grid.configurations if not c.config.scatter]
    assert {c.config.max_task_replicas for c in inline} == {0}
    assert {c.config.task_registry for c in inline} == {None, "memory", "disk"}
    # The 9 refused cells are named, with the library's reason.
    assert len(grid.excluded) == 9
    assert all("needs scatter=True" in why for why in grid.excluded)


def test_grid_axes_parse_and_bad_parts_are_named():
    axes = parse_grid("replicas=0,2,all;registry=none,disk;scatter=on")
    assert axes.replicas == (0, 2, None)
    assert axes.registries == (None, "disk")
    assert axes.scatter == (True,)
    assert parse_grid("registry=memory").replicas == (0, 1, 2, None)
    with pytest.raises(ChaosError, match="replicas takes an int"):
        parse_grid("replicas=two")
    with pytest.raises(ChaosError, match="AXIS one of replicas, registry, scatter"):
        parse_grid("registries=disk")


def test_timeout_and_attempts_are_crossed_with_the_registry_cells_only():
    axes = parse_grid("replicas=0;registry=none,memory;scatter=on;timeout=none,0.3;attempts=5,2")
    slugs = sorted(c.slug for c in build_grid(["resilience"], axes).configurations)
    assert slugs == ["resilience-r0-memory-scatter", "resilience-r0-memory-scatter-attempts2",
                     "resilience-r0-memory-scatter-attempts2-timeout0.3",
                     "resilience-r0-memory-scatter-timeout0.3", "resilience-r0-none-scatter"]
    with pytest.raises(ChaosError, match="timeout takes none or seconds"):
        parse_grid("timeout=-1")


def test_the_notice_plugin_is_an_axis_of_the_library_only():
    axes = parse_grid("replicas=2;registry=disk;scatter=on;notice=none,2")
    grid = build_grid(["resilience", "prc630"], axes)
    slugs = [c.slug for c in grid.configurations]
    assert slugs == ["resilience-r2-disk-scatter", "resilience-r2-disk-scatter-notice2",
                     "prc630-r2-disk-scatter"]
    assert grid.configurations[1].config.notice == 2.0
    [refused] = grid.excluded  # the PR #630 model has no notice plugin
    assert refused.startswith("prc630-r2-disk-scatter-notice2: notice=2 does not apply")
    assert axes.describe().endswith(";notice=none,2")
    # A run recorded before the axis existed reads back without the plugin.
    assert TargetConfig.from_dict({"task_registry": "disk"}).notice is None
    with pytest.raises(ChaosError, match=r"notice takes none .* seconds of notice > 0"):
        parse_grid("notice=0")


def test_a_grid_of_only_refused_cells_is_refused():
    with pytest.raises(ChaosError, match="leaves no configuration"):
        build_grid(["resilience"], parse_grid("replicas=2;scatter=off"))


def test_the_plan_interleaves_fault_free_runs_and_refuses_twins():
    schedules = [FaultSchedule(seed=i) for i in range(3)]
    plan = plan_campaign("ci", targets=["resilience"], axes=parse_grid(
        "replicas=0;registry=none,disk;scatter=on"), schedules=schedules, clean_runs=1)
    ids = [spec.run_id for spec in plan.runs()]
    assert ids[:4] == ["c000-resilience-r0-none-scatter", "s000-resilience-r0-none-scatter",
                       "c000-resilience-r0-disk-scatter", "s000-resilience-r0-disk-scatter"]
    assert len(ids) == 2 * (3 + 1)
    twin = Configuration("resilience", TargetConfig())
    with pytest.raises(ChaosError, match="appear twice"):
        plan_campaign("ci", configurations=[twin, twin], schedules=schedules)


def test_ci_draws_the_same_schedules_every_time_starting_with_the_plainest():
    first = plan_campaign("ci", targets=["dask-raw"])
    again = plan_campaign("ci", targets=["dask-raw"])
    assert first.seed == again.seed == 0
    # The fixed regression and coverage schedules first, then the 4 drawn ones.
    assert first.schedules == again.schedules and len(first.schedules) == 3 + 18 + 4
    plainest = first.schedules[first.pinned].faults
    assert len(plainest) == 1 and plainest[0].kind == "sigkill"
    assert plan_campaign("ci", targets=["dask-raw"], seed=5).schedules != first.schedules
