"""Preemption with notice, scheduler-kill and the renamed `nanny-close` as plain data; old
(version-1) schedules and histories still read."""

from __future__ import annotations

import json

import pytest

from chaos import AtStep, AtTime, Fault, FaultSchedule, ScheduleError, check_history
from chaos.campaign import PROFILES, plan_campaign
from chaos.cli import main as chaos_main
from chaos.history import HISTORY_VERSION, read_history
from chaos.spec import DEFAULT_NOTICE
from tests.checker.histories import HistoryBuilder, one_output_each


def test_a_preemption_carries_its_notice_through_json():
    schedule = FaultSchedule((Fault("preempt", AtStep(step=0, fraction=0.5, task="t1"),
                                    notice=3.5),
                              Fault("preempt", AtTime(seconds=1.0)),
                              Fault("scheduler-kill", AtStep(step=1, task="t2"))))
    data = json.loads(schedule.to_json())
    assert [f.get("notice") for f in data["faults"]] == [3.5, DEFAULT_NOTICE, None]
    assert FaultSchedule.from_json(schedule.to_json()) == schedule
    assert "preempt (3.5s notice)" in str(schedule)
    assert "kill the scheduler" in str(schedule)


@pytest.mark.parametrize(("fault", "names"), [
    (lambda: Fault("sigkill", AtTime(seconds=0), notice=2.0), "only a preemption"),
    (lambda: Fault("preempt", AtTime(seconds=0), notice=-1), "notice=-1"),
    (lambda: Fault("preempt", AtTime(seconds=0), notice=float("nan")), "notice=nan"),
    (lambda: Fault("sigterm", AtTime(seconds=0)), "'sigterm' is not one of"),
])
def test_a_bad_notice_or_the_old_name_in_new_code_is_refused(fault, names):
    with pytest.raises(ScheduleError, match=names):
        fault()


def test_a_version_1_schedule_reads_its_sigterm_as_nanny_close():
    old = {"version": 1, "seed": 3, "faults": [
        {"id": "f0", "kind": "sigterm", "trigger": {"type": "at-time", "seconds": 0.5},
         "target": {"role": "running"}}]}
    schedule = FaultSchedule.from_dict(old)
    assert schedule.faults[0].kind == "nanny-close"
    assert schedule.to_dict()["version"] == 2


def test_a_version_1_history_still_reads_and_checks(tmp_path):
    old = HistoryBuilder()  # writes format version 1, as the project did before
    old.events[0]["schedule"] = {"version": 1, "seed": 0, "faults": [
        {"id": "f0", "kind": "sigterm", "trigger": {"type": "at-time", "seconds": 0.1}}]}
    old.clean_task("t0")
    old.fault(kind="sigterm", fault_id="f0")
    old.end()
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in old.events))

    events = read_history(path)
    assert events[0]["versions"]["history"] == HISTORY_VERSION
    assert events[0]["schedule"]["faults"][0]["kind"] == "nanny-close"
    assert [e["kind"] for e in events if e["type"] == "fault"] == ["nanny-close"]
    assert check_history(events, one_output_each("t0")).outcome == "valid"


def test_the_deploy_profile_runs_a_preemption_and_a_scheduler_kill_whatever_it_draws():
    plan = plan_campaign("deploy", schedules=0, kinds=PROFILES["deploy"].kinds)
    kinds = [fault.kind for schedule in plan.schedules for fault in schedule.faults]
    assert kinds == ["preempt", "scheduler-kill"]
    assert plan.pinned == 2 and "(2 pinned)" in plan.describe()
    drawn = plan_campaign("deploy", schedules=3, kinds=PROFILES["deploy"].kinds)
    assert drawn.schedules[:2] == plan.schedules and len(drawn.schedules) == 5


def test_a_deploy_campaign_on_a_backend_that_cannot_kill_its_scheduler_is_refused(tmp_path):
    out = tmp_path / "campaign"
    code = chaos_main(["campaign", "--profile", "deploy", "--cluster", "local",
                       "--kinds", "sigkill", "--out", str(out)])
    assert code == 2 and not out.exists()  # refused before any cluster was started
