"""The checker on hand-written histories: what must pass, and every violation that must fail."""

from __future__ import annotations

import json

import pytest

from chaos.errors import HistoryError
from chaos.history import HISTORY_VERSION, read_history
from chaos.judge import Verdict, check_history, oracle_from_history
from tests.checker.histories import HistoryBuilder, digest, one_output_each, oracle_for

REGISTRY = {"task_registry": "disk", "max_task_replicas": 0, "max_attempts": 5}
UNPROTECTED = {"task_registry": None, "max_task_replicas": 0}


def kinds(verdict: Verdict) -> dict[str, int]:
    return {kind: len(items) for kind, items in verdict.by_kind().items() if items}


# ---------------------------------------------------------------------------- must pass


def test_a_clean_run_is_valid_and_counts_every_delivery():
    history = HistoryBuilder(**REGISTRY)
    for task in ("a", "b", "c"):
        history.clean_task(task)
    history.end()
    verdict = check_history(history.events, one_output_each("a", "b", "c"))
    assert verdict.valid and verdict.outcome == "valid"
    assert verdict.violations == ()
    assert (verdict.deliveries.expected, verdict.deliveries.delivered) == (3, 3)
    assert verdict.expected.must_deliver_all and verdict.expected.rule == "no-faults"


def test_resubmission_after_a_kill_with_a_registry_is_valid_and_counts_the_re_execution():
    history = HistoryBuilder(**REGISTRY)
    history.submit("a")
    execution = history.invoke("a", worker=0)
    history.fault(worker=0)
    history.outcome(execution, "info")
    history.step_error("a", cause="lost-input")
    history.submit("a", attempt=2, reason="lost-input")
    history.execute("a", worker=1, attempt=2)
    history.deliver("a", attempts=2)
    history.end()
    verdict = check_history(history.events, one_output_each("a"))
    assert verdict.valid, verdict.summary()
    assert verdict.executions.re_executions == 1
    assert verdict.executions.interrupted == 1
    assert verdict.expected.rule == "registry"


def test_duplicate_executions_are_information_not_violations():
    history = HistoryBuilder(**REGISTRY)
    history.submit("a")
    first = history.invoke("a", worker=0)
    second = history.invoke("a", worker=1, attempt=2)
    history.outcome(first)
    history.outcome(second)
    history.deliver("a")
    history.suppressed("a", attempt=2)
    history.end()
    verdict = check_history(history.events, one_output_each("a"))
    assert verdict.valid
    assert verdict.executions.duplicate_completions == 1
    assert verdict.executions.suppressed_duplicates == 1
    [repeated] = verdict.repeated_executions
    assert (repeated.task_id, repeated.executions, repeated.completions) == ("a", 2, 2)


def test_a_loud_failure_is_allowed_when_the_model_says_losses_may_happen():
    history = HistoryBuilder(**UNPROTECTED)
    history.clean_task("a")
    history.submit("b")
    execution = history.invoke("b", worker=1)
    history.fault(worker=1)
    history.outcome(execution, "info")
    failed_seq = history.task_failed("b", reason="input lost; set task_registry='disk'")
    history.end("failed")
    verdict = check_history(history.events, one_output_each("a", "b"))
    assert verdict.valid, verdict.summary()
    [failure] = verdict.reported_failures
    assert (failure.task_id, failure.seq) == ("b", failed_seq)
    assert "task_registry" in failure.reason
    assert failure.excuse is not None


# ---------------------------------------------------------------------------- must fail


def test_silent_loss_is_lost_with_the_task_trail_as_evidence():
    history = HistoryBuilder("dask-raw", **UNPROTECTED)
    history.clean_task("a")
    submit_seq = history.submit("b")
    execution = history.invoke("b", worker=1)
    invoke_seq = len(history.events) - 1
    history.fault(worker=1)
    info_seq = history.outcome(execution, "info")
    history.end()
    verdict = check_history(history.events, one_output_each("a", "b"))
    assert verdict.outcome == "invalid"
    assert kinds(verdict) == {"lost": 1}
    [lost] = verdict.violations
    assert (lost.task_id, lost.index) == ("b", (0,))
    assert lost.seqs == (submit_seq, invoke_seq, info_seq)
    # The model allowed the loss, but only loudly: dask-raw said nothing.
    assert not verdict.expected.must_deliver_all


def test_event_types_added_to_the_format_later_still_count_as_evidence():
    history = HistoryBuilder(**UNPROTECTED)
    history.submit("a")
    history.execute("a")
    completed = history.emit("step-completed", task_id="a", index=[], step=0, attempt=1,
                             key="k", n_outputs=1)
    history.end()
    verdict = check_history(history.events, one_output_each("a"))
    [lost] = verdict.violations
    assert completed in lost.seqs


def test_duplicate_delivery_cites_every_delivery():
    history = HistoryBuilder(**REGISTRY)
    history.submit("a")
    history.execute("a")
    first = history.deliver("a")
    second = history.deliver("a")
    history.end()
    verdict = check_history(history.events, one_output_each("a"))
    assert kinds(verdict) == {"duplicated": 1}
    assert verdict.violations[0].seqs == (first, second)
    assert verdict.deliveries.deliveries == 2 and verdict.deliveries.delivered == 1


def test_corrupted_delivery_names_the_bad_delivery():
    history = HistoryBuilder(**REGISTRY)
    history.clean_task("a")
    history.submit("b")
    history.execute("b")
    bad = history.deliver("b", value_digest=digest("someone else", (0,)))
    history.end()
    verdict = check_history(history.events, one_output_each("a", "b"))
    assert kinds(verdict) == {"corrupted": 1}
    [corrupted] = verdict.violations
    assert (corrupted.task_id, corrupted.index, corrupted.seqs) == ("b", (0,), (bad,))


def test_unexpected_delivery_and_the_int_str_task_id_trap():
    # The oracle expects task 1 (an int); a delivery of task "1" (a str) is another output.
    history = HistoryBuilder(**REGISTRY)
    history.submit(1)
    history.execute(1)
    stray = history.deliver("1", value_digest=digest(1, (0,)))
    history.end()
    verdict = check_history(history.events, oracle_for([(1, (0,))]))
    assert kinds(verdict) == {"unexpected": 1, "lost": 1}
    unexpected = verdict.by_kind()["unexpected"][0]
    assert (unexpected.task_id, unexpected.seqs) == ("1", (stray,))
    assert verdict.by_kind()["lost"][0].task_id == 1


def test_an_extra_output_index_is_unexpected():
    history = HistoryBuilder(**REGISTRY)
    history.clean_task("a")
    extra = history.deliver("a", (1,))
    history.end()
    verdict = check_history(history.events, one_output_each("a"))
    assert kinds(verdict) == {"unexpected": 1}
    assert verdict.violations[0].index == (1,) and verdict.violations[0].seqs == (extra,)


def test_a_reported_failure_is_a_violation_when_the_model_says_must_deliver():
    history = HistoryBuilder(**REGISTRY)
    history.clean_task("a")
    history.submit("b")
    execution = history.invoke("b", worker=1)
    history.fault(worker=1)
    history.outcome(execution, "info")
    failed_seq = history.task_failed("b", reason="gave up")
    history.end("failed")
    verdict = check_history(history.events, one_output_each("a", "b"))
    assert kinds(verdict) == {"reported-failed": 1}
    [violation] = verdict.violations
    assert violation.task_id == "b" and failed_seq in violation.seqs
    assert "gave up" in violation.detail and "must-deliver-all" in violation.detail
    assert verdict.reported_failures[0].excuse is None


def test_a_hung_run_is_its_own_verdict_and_nothing_is_called_lost():
    history = HistoryBuilder(**REGISTRY)
    history.clean_task("a")
    submit_seq = history.submit("b")
    end_seq = history.end("hung")
    verdict = check_history(history.events, one_output_each("a", "b"))
    assert verdict.outcome == "hung" and not verdict.valid
    assert verdict.run_status == "hung"
    assert "lost" not in kinds(verdict)
    run_level, pending = verdict.by_kind()["hung"]
    assert (run_level.task_id, run_level.seqs) == (None, (end_seq,))
    assert (pending.task_id, pending.seqs) == ("b", (submit_seq,))


def test_a_history_without_run_end_is_cut_short():
    history = HistoryBuilder(**REGISTRY)
    last = history.clean_task("a")
    verdict = check_history(history.events, one_output_each("a"))
    assert (verdict.outcome, verdict.run_status) == ("hung", "cut-short")
    assert verdict.violations[0].seqs == (last,)
    assert "cut short" in verdict.violations[0].detail


def test_a_hung_run_still_reports_definite_violations():
    history = HistoryBuilder(**REGISTRY)
    history.submit("a")
    history.execute("a")
    history.deliver("a")
    history.deliver("a")
    verdict = check_history(history.events, one_output_each("a"))
    assert verdict.outcome == "hung"
    assert kinds(verdict) == {"duplicated": 1, "hung": 1}


# ---------------------------------------------------------------------------- format


def test_verdicts_round_trip_through_json():
    history = HistoryBuilder(**UNPROTECTED)
    history.submit(3)
    history.execute(3)
    history.deliver(3)
    history.deliver(3, value_digest="0" * 64)
    history.task_failed("x")
    history.end()
    verdict = check_history(history.events, oracle_for([(3, (0,)), ("x", (0, 1))]))
    assert verdict.violations, "the fixture should produce evidence to round-trip"
    text = json.dumps(verdict.to_dict())
    again = Verdict.from_dict(json.loads(text))
    assert again == verdict
    assert json.loads(text)["valid"] is False


def test_a_history_must_open_with_run_start():
    history = HistoryBuilder(**REGISTRY)
    history.clean_task("a")
    with pytest.raises(HistoryError, match="run-start"):
        check_history(history.events[1:], one_output_each("a"))


def test_a_history_in_another_format_version_is_refused_with_the_fix():
    history = HistoryBuilder(**REGISTRY)
    history.events[0]["versions"]["history"] = HISTORY_VERSION + 1
    history.end()
    with pytest.raises(HistoryError, match=f"format version {HISTORY_VERSION + 1}"):
        check_history(history.events, one_output_each())


def test_seq_must_increase():
    history = HistoryBuilder(**REGISTRY)
    history.clean_task("a")
    events = [history.events[0], history.events[2], history.events[1]]
    with pytest.raises(HistoryError, match="strictly increasing"):
        check_history(events, one_output_each("a"))


def test_read_history_drops_a_torn_last_line_and_rejects_a_bad_middle_line(tmp_path):
    history = HistoryBuilder(**REGISTRY)
    history.clean_task("a")
    history.end()
    lines = [json.dumps(event) for event in history.events]
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    events = read_history(run)
    assert len(events) == len(lines) - 1
    assert check_history(events, one_output_each("a")).run_status == "cut-short"

    lines[1] = "{not json"
    (run / "history.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(HistoryError, match=r"history.jsonl:2"):
        read_history(run / "history.jsonl")


def test_read_history_names_the_missing_file(tmp_path):
    with pytest.raises(HistoryError, match="python -m chaos run"):
        read_history(tmp_path)


def test_oracle_from_a_reference_run_and_its_refusal_of_a_nondeterministic_one():
    reference = HistoryBuilder(**REGISTRY)
    reference.clean_task("a")
    reference.clean_task("b")
    reference.end()
    assert oracle_from_history(reference.events) == one_output_each("a", "b")
    reference.deliver("a", value_digest="f" * 64)
    with pytest.raises(HistoryError, match="two digests"):
        oracle_from_history(reference.events)
