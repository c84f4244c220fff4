"""Figures draw what the tables hold: a lane per worker, a bar per execution, a tick per
configuration, and curves that survive groups with nothing to plot.
"""

from __future__ import annotations

from chaos.analysis import check_runs, makespan_overhead
from reports import campaign_tables, figures
from reports.preview import preview_runs
from tests.checker.histories import HistoryBuilder, one_output_each


def killed_run():
    history = HistoryBuilder(workers=3, task_registry="disk", run_id="killed")
    history.submit("a")
    execution = history.invoke("a", worker=2)
    history.fault(worker=2)
    history.outcome(execution, "info")
    history.submit("a", attempt=2, reason="lost-input")
    history.execute("a", worker=0, attempt=2)
    history.deliver("a")
    history.deliver("a")  # a duplicate, flagged on the client lane
    history.clean_task("b", worker=1)
    history.end()
    runs = check_runs([history.events], lambda start: one_output_each("a", "b"))
    return runs, campaign_tables(runs)


def test_timeline_has_a_lane_per_worker_and_a_bar_per_execution():
    runs, tables = killed_run()
    duplicate_seqs = runs[0].verdict.by_kind()["duplicated"][0].seqs
    figure = figures.timeline_figure(
        tables.executions, tables.faults, tables.deliveries,
        client_events=tables.client_events, flagged_deliveries=duplicate_seqs,
        run_end=(1.0, "completed"), title="killed",
    )
    axes = figure.axes[0]
    labels = [tick.get_text() for tick in axes.get_yticklabels()]
    assert labels[0] == "client" and len(labels) == 1 + 3
    assert all(label.startswith("tcp://") for label in labels[1:])  # hosts differ: kept
    bars = [bar for container in axes.containers for bar in container]
    assert len(bars) == len(tables.executions) == 3
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "delivery with a violation" in legend and "resubmission" in legend
    assert "reported failed" not in legend  # nothing was reported failed


def test_timeline_of_a_cut_short_run_says_so():
    _, tables = killed_run()
    figure = figures.timeline_figure(tables.executions, tables.faults, tables.deliveries)
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert any("cut short" in text for text in texts)


def test_per_configuration_figures_have_one_row_per_configuration():
    runs = preview_runs(36, 2)
    tables = campaign_tables(runs)
    order = list(tables.verdicts.index)
    for figure in (figures.wasted_work_figure(tables.runs, order),
                   figures.overhead_figure(makespan_overhead(tables.runs), order)):
        ticks = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
        assert ticks == order


def test_few_configurations_get_a_curve_each_in_one_row_of_panels():
    tables = campaign_tables(preview_runs(3, 3))
    recoveries = figures.with_cdf_groups(tables.recoveries, tables.runs)
    assert figures.cdf_grouping(tables.runs) == ("label", None)
    figure = figures.recovery_cdf_figure(recoveries, "label")
    assert len(figure.axes) == 3
    # Every configuration is drawn in every panel, even one that never recovered.
    assert all(len(axis.lines) == recoveries["label"].nunique() for axis in figure.axes)


def test_many_configurations_get_a_row_per_target_and_a_curve_per_protection():
    tables = campaign_tables(preview_runs(36, 2))
    recoveries = figures.with_cdf_groups(tables.recoveries, tables.runs)
    group_by, facet_by = figures.cdf_grouping(tables.runs)
    assert (group_by, facet_by) == ("protection", "target")
    figure = figures.recovery_cdf_figure(recoveries, group_by, facet_by)
    targets = list(dict.fromkeys(recoveries["target"]))
    assert len(figure.axes) == 3 * len(targets)
    for row, target in enumerate(targets):
        present = recoveries.loc[recoveries["target"] == target, "protection"].nunique()
        assert present <= 6
        assert all(len(axis.lines) == present for axis in figure.axes[3 * row: 3 * row + 3])
