"""What three calls and a kill mean: `chaos.testing.judge` on hand-made attempt results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from chaos.testing.attempts import AttemptResult, CallResult
from chaos.testing.judge import StepOf, differ, judge_kill, judge_runs
from chaos.testing.snapshots import FileChange, FileState

WHERE = StepOf("relax", 4, 1)


def call(*outputs: Any, error: str | None = None, changes: tuple[str, ...] = (),
         unpicklable: str | None = None) -> CallResult:
    pickled = None if error or unpicklable else tuple(cloudpickle.dumps(o) for o in outputs)
    return CallResult(pickled, 0.1, error, unpicklable, changes)


def runs(a1: CallResult, a2: CallResult, b: CallResult) -> list[Any]:
    return judge_runs(WHERE, AttemptResult("tcp://a", 1, (a1, a2)),
                      AttemptResult("tcp://b", 2, (b,)), None)


def kinds_and_details(found: list[Any]) -> list[tuple[str, str]]:
    assert all((f.protocol, f.task_id, f.step) == ("relax", 4, 1) for f in found)
    return [(f.kind, f.detail) for f in found]


def test_three_equal_calls_are_fine() -> None:
    assert runs(call("x"), call("x"), call("x")) == []


def test_runs_that_differ_across_workers_are_nondeterministic() -> None:
    [(kind, detail)] = kinds_and_details(runs(call("x1"), call("x1"), call("x2")))
    assert kind == "nondeterministic"
    assert detail == "runs from the same input on tcp://a and tcp://b differ: output 0: 'x1' " \
                     "against 'x2'"
    [(kind, detail)] = kinds_and_details(runs(call("x1"), call("x3"), call("x2")))
    assert kind == "nondeterministic" and detail.endswith("two calls in a row on one worker "
                                                          "differ too")


def test_a_second_call_that_differs_while_another_worker_agrees_is_hidden_state() -> None:
    [(kind, detail)] = kinds_and_details(runs(call("x1"), call("x2"), call("x1")))
    assert kind == "hidden-state"
    assert detail.startswith("of two calls in a row on tcp://a, the second differs from the first")


def test_a_changed_global_is_hidden_state_even_when_outputs_agree_and_is_named_once() -> None:
    change = "module global `_cache` of m ({} -> {'p': 1})"
    found = runs(call("x", changes=(change,)), call("x", changes=(
        "module global `_cache` of m ({'p': 1} -> {'p': 2})",)), call("x", changes=(change,)))
    assert kinds_and_details(found) == [("hidden-state", f"a call changed {change}")]


def test_errors_are_reported_first_and_a_flaky_one_says_so() -> None:
    boom = "ValueError: no rotamers\nTraceback..."
    [(kind, detail)] = kinds_and_details(runs(call(error=boom), call(error=boom), call(error=boom)))
    assert (kind, detail) == ("error", f"it raised: {boom}")
    [(kind, detail)] = kinds_and_details(runs(call("x"), call(error=boom), call("x")))
    assert detail.startswith("it raised (in 1 of 3 runs from the same input: it fails only "
                             "sometimes): ValueError")


NOT_LOADED = "the protocol could not be loaded on worker tcp://a: ModuleNotFoundError"


@pytest.mark.parametrize("failure", ["the step did not finish within 60 s",
                                     AttemptResult("tcp://a", 1, (), NOT_LOADED)])
def test_an_attempt_without_a_result_is_an_error(failure: Any) -> None:
    found = judge_runs(WHERE, failure, AttemptResult("tcp://b", 2, (call("x"),)), None)
    assert [f.kind for f in found] == ["error"]
    assert found[0].detail == (failure if isinstance(failure, str) else failure.load_error)


def test_an_output_that_does_not_pickle_is_named() -> None:
    lock = "output 0 (lock) cannot be pickled: TypeError: cannot pickle '_thread.lock' object"
    found = runs(call(unpicklable=lock), call(unpicklable=lock), call(unpicklable=lock))
    assert kinds_and_details(found) == [("not-picklable", lock)]


def test_differ_counts_outputs_and_uses_compare() -> None:
    assert differ(call("a"), call("a", "b"), None) == "1 output(s) against 2"
    assert differ(call("a1"), call("a2"), lambda x, y: x[0] == y[0]) is None
    assert differ(call("a1"), call("a2"), lambda x, y: 1 / 0) == (
        "compare() raised on output 0: ZeroDivisionError: division by zero")


def test_an_input_after_a_fan_out_is_named() -> None:
    where = StepOf("relax", 4, 2, (0, 1), fanned_out=True)
    found = judge_runs(where, AttemptResult("a", 1, (call("x"), call("x"))),
                       AttemptResult("b", 2, (call("y"),)), None)
    assert found[0].detail.startswith("(input (0, 1)) runs from the same input")


def test_a_kill_that_left_files_or_changed_the_rerun_is_partial_state(tmp_path: Path) -> None:
    left = [FileChange(str(tmp_path / "scratch.tmp"), "created", None, FileState(9, 1, "d"))]
    at = "41% into its 150 ms run (worker tcp://a)"
    found = judge_kill(WHERE, left, at, None, call("x"), None, tmp_path)
    assert kinds_and_details(found) == [(
        "partial-state", f"the attempt killed {at} left behind: created scratch.tmp (9 bytes); "
                         "an uninterrupted run leaves none of this")]
    rerun = AttemptResult("tcp://b", 2, (call("resumed"),))
    found = judge_kill(WHERE, [], at, rerun, call("fresh"), None, tmp_path)
    assert kinds_and_details(found) == [(
        "partial-state", f"the rerun after the attempt killed {at} went wrong: its outputs "
                         "differ from the uninterrupted run's: output 0: 'fresh' against "
                         "'resumed'")]
    same = AttemptResult("tcp://b", 2, (call("fresh"),))
    assert judge_kill(WHERE, [], at, same, call("fresh"), None, tmp_path) == []


def test_a_rerun_the_check_could_not_make_is_an_error_not_the_protocols_partial_state(
        tmp_path: Path) -> None:
    at = "50% into its 150 ms run (worker tcp://a)"
    not_run = judge_kill(WHERE, [], at, "the cluster lost the rerun: KilledWorker", call("x"),
                         None, tmp_path)
    not_loaded = judge_kill(WHERE, [], at,
                            AttemptResult("tcp://b", 2, (), load_error="ImportError: no relax"),
                            call("x"), None, tmp_path)
    assert kinds_and_details(not_run) == [(
        "error", f"the check could not rerun the step after the attempt killed {at}: the "
                 "cluster lost the rerun: KilledWorker")]
    assert kinds_and_details(not_loaded)[0][0] == "error"
    # A rerun that ran and raised is the protocol's: it could not restart.
    raised = AttemptResult("tcp://b", 2, (call(error="FileExistsError: lock"),))
    [(kind, detail)] = kinds_and_details(judge_kill(WHERE, [], at, raised, call("x"), None,
                                                    tmp_path))
    assert kind == "partial-state" and detail.endswith("it raised: FileExistsError: lock")
