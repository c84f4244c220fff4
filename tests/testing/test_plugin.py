"""The pytest plugin as a user meets it: a test file of theirs, run by pytest (`pytester`).

The inner sessions run in this process and share the outer session's cluster
(`--chaos-scheduler`), so that no test starts a cluster of its own.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest

pytest_plugins = ["pytester"]

PROTOCOLS = '''
import os, random, time
from pathlib import Path

def fold(pose, *, seed, **kwargs):
    rng = random.Random(seed)
    time.sleep(0.03)
    return f"{pose}|fold{rng.random():.6f}"

def relax(pose, **kwargs):
    return pose + "|relaxed"

def write_decoy(pose, *, task_id, **kwargs):
    Path("decoy.pdb").write_text(f"MODEL {task_id}\\n{pose}\\n")
    return pose

def draw_unseeded(pose, **kwargs):
    return f"{pose}|{random.random()}"

_calls = 0

def count_calls(pose, **kwargs):
    global _calls
    _calls += 1
    return f"{pose}|{_calls}"

def leave_scratch(pose, *, task_id, **kwargs):
    scratch = Path(f"scratch-{task_id}.tmp")
    scratch.write_text("half done")
    time.sleep(0.15)
    scratch.unlink()
    return pose

TASKS = [{"task_id": i, "seed": i} for i in range(3)]
'''


def run_user_tests(pytester: pytest.Pytester, client: Any, body: str, *args: str) -> Any:
    pytester.makepyfile(test_user=PROTOCOLS + textwrap.dedent(body))
    return pytester.runpytest("--chaos-scheduler", client.scheduler.address, *args)


def failure_of(result: Any) -> str:
    """The failure's message as one line: pytest's "E" margins and line breaks taken out."""
    return " ".join(line[1:].strip() for line in result.outlines if line.startswith("E "))


def test_a_pure_chain_passes(pytester: pytest.Pytester, chaos_client: Any) -> None:
    result = run_user_tests(pytester, chaos_client, """
        def test_chain(preemption):
            report = preemption.check([fold, relax], TASKS, input="pose")
            assert report.safe and len(report.aimed()) == 3
    """, "--chaos-seed", "11")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["chaos-seed: 11 (preemption checks; replay with --chaos-seed=11)"])


@pytest.mark.parametrize(("protocol", "kind", "evidence", "kills"), [
    ("write_decoy", "side-effect", "task 0: it created decoy.pdb (13 bytes)", 0),
    ("draw_unseeded", "nondeterministic", "task 0: runs from the same input on tcp://", 0),
    ("count_calls", "hidden-state", "task 0: a call changed module global `_calls` of test_user",
     0),
    ("leave_scratch", "partial-state", "left behind: created scratch-", 1),
])
def test_an_unsafe_protocol_fails_with_a_message_naming_protocol_task_and_step(
        pytester: pytest.Pytester, chaos_client: Any, protocol: str, kind: str, evidence: str,
        kills: int) -> None:
    result = run_user_tests(pytester, chaos_client, f"""
        def test_chain(preemption):
            preemption.check([{protocol}], TASKS, input="pose", kills={kills})
    """, "--chaos-seed", "7")
    result.assert_outcomes(failed=1)
    text = failure_of(result)
    assert f"[{kind}] protocol {protocol}, step 0:" in text, text
    assert evidence in text, text
    assert re.search(r"\] protocol \w+, step 0: .*task \d+: ", text), text  # the task, too
    assert "fix: " in text
    assert "replay: pytest test_user.py::test_chain --chaos-seed=7" in text
    assert "preemption check (seed 7): NOT safe to restart" in text


def test_the_failing_step_is_named_in_a_chain(pytester: pytest.Pytester,
                                              chaos_client: Any) -> None:
    result = run_user_tests(pytester, chaos_client, """
        def test_chain(preemption):
            preemption.check([fold, write_decoy], TASKS, input="pose", kills=0)
    """, "--chaos-seed", "3")
    result.assert_outcomes(failed=1)
    text = failure_of(result)
    assert "[side-effect] protocol write_decoy, step 1:" in text, text
    for task in (0, 1, 2):
        assert f"task {task}: it " in text


def test_without_a_seed_one_is_drawn_printed_and_used(pytester: pytest.Pytester,
                                                      chaos_client: Any) -> None:
    result = run_user_tests(pytester, chaos_client, """
        def test_chain(preemption):
            preemption.check([draw_unseeded], TASKS, input="pose", kills=0)
    """)
    header = [line for line in result.outlines if line.startswith("chaos-seed: ")]
    assert len(header) == 1, result.outlines
    seed = int(header[0].split()[1])
    assert f"replay: pytest test_user.py::test_chain --chaos-seed={seed}" in failure_of(result)


def test_the_marker_is_registered_and_given_to_every_test_using_the_fixture(
        pytester: pytest.Pytester, chaos_client: Any) -> None:
    body = """
        def test_chain(preemption):
            preemption.check([fold], TASKS[:1], input="pose", kills=0)

        def test_other():
            pass
    """
    result = run_user_tests(pytester, chaos_client, body, "-m", "not preemption")
    result.assert_outcomes(passed=1, deselected=1)
    result = run_user_tests(pytester, chaos_client, body, "-m", "preemption", "--strict-markers")
    result.assert_outcomes(passed=1, deselected=1)
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.preemption: a preemption-safety check*"])


def test_the_fixture_keeps_its_seed_and_client(pytester: pytest.Pytester,
                                               chaos_client: Any) -> None:
    result = run_user_tests(pytester, chaos_client, """
        def test_chain(preemption):
            preemption.check([fold], TASKS, input="pose", seed=3)
    """)
    result.assert_outcomes(failed=1)
    assert "the fixture takes its client from chaos_client and its seed from --chaos-seed" \
        in failure_of(result)
