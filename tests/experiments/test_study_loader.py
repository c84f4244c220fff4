"""Study files: the built-ins load, and each bad input names the key, the rule and the fix."""

from __future__ import annotations

import pytest

from experiments import StudyError, builtin_studies, load_study, parse_study
from tests.experiments.conftest import TINY_STUDY

try:
    import tomllib
except ImportError:  # pragma: no cover
    import tomli as tomllib


def tiny() -> dict:
    return tomllib.loads(TINY_STUDY.format(repetitions=2, rates="[0, 2]"))


def test_the_builtin_studies_load_with_the_grids_the_issue_asks_for():
    assert set(builtin_studies()) >= {"replicas-vs-preemption", "step-granularity", "scale"}
    study = load_study("replicas-vs-preemption")
    axes = dict(study.axes)
    assert axes["max_task_replicas"] == (0, 1, 2, None)
    assert axes["task_registry"] == (None, "memory", "disk")
    assert len(study.preemption.rates) >= 4 and study.preemption.rates[0] == 0
    assert len(study.cells()) == 4 * 3 * len(study.preemption.rates)
    granularity = load_study("step-granularity")
    cells = granularity.cells()
    # one protocol of length D split into k steps: the chain's total length is constant
    assert len({round(c.steps * c.step_duration.mean(), 9) for c in cells}) == 1
    scale = load_study("scale")
    assert scale.mode == "simulation" and scale.cells()[0].workers == 1000
    assert scale.cells()[0].tasks == 100_000 and len(scale.preemption.rates) == 5


def test_quick_merges_its_table_over_the_study():
    study = load_study("replicas-vs-preemption", quick=True)
    assert study.repetitions == 1 and study.quick
    assert study.fingerprint() != load_study("replicas-vs-preemption").fingerprint()


def test_times_are_model_times_compressed_for_the_real_runs():
    study = parse_study(tiny())
    cell = study.cells()[0]
    # 4 to 8 minutes at 1.8 real seconds per hour
    assert cell.step_duration.mean() == pytest.approx(6 * 60 * 1.8 / 3600)


@pytest.mark.parametrize(("edit", "words"), [
    (lambda d: d["axes"].update(replicas=[0, 1]), ["axes.replicas", "max_task_replicas"]),
    (lambda d: d["axes"].update(max_task_replicas=[0, -1]), ["-1", "\"all\""]),
    (lambda d: d["axes"].update(task_registry=["sqlite"]), ["'sqlite'", "\"disk\""]),
    (lambda d: d["preemption"].update(rates=[0, -2]), ["preemption.rates", ">= 0"]),
    (lambda d: d["preemption"].pop("seconds_per_hour"), ["seconds_per_hour", "real seconds"]),
    (lambda d: d["preemption"].update(kinds=[{"kind": "notice"}]), ["notice", "120s"]),
    (lambda d: d["preemption"].update(kinds=[{"kind": "eviction"}]), ["eviction", "sudden"]),
    (lambda d: d["workload"].update(fanout=[2, 1, 1]), ["fanout", "steps = 2"]),
    (lambda d: d["workload"].update(step_duration="ten minutes"), ["step_duration", "10min"]),
    (lambda d: d["workload"].update(step_duration={"dist": "weibull"}), ["weibull", "lognormal"]),
    (lambda d: d.update(colour="blue"), ["colour"]),
    (lambda d: d.update(mode="simulation"), ["calibration_from"]),
    (lambda d: d["objective"].update(max_failure_probability=2), ["max_failure_probability"]),
])
def test_a_bad_study_names_the_key_and_the_fix(edit, words):
    data = tiny()
    edit(data)
    with pytest.raises(StudyError) as caught:
        parse_study(data, source="bad.toml")
    message = str(caught.value)
    assert "bad.toml" in message
    for word in words:
        assert word in message, message


def test_an_unknown_study_name_lists_the_builtins(tmp_path):
    with pytest.raises(StudyError, match="replicas-vs-preemption"):
        load_study("replica-vs-preemption")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [", encoding="utf-8")
    with pytest.raises(StudyError, match="not valid TOML"):
        load_study(broken)
