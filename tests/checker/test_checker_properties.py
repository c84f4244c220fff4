"""Property: the checker's evidence is exactly what a generated delivery plan put there.

Each expected output gets a fate (delivered once, twice, corrupted, never), some tasks
are reported failed, some strays are delivered; the history is written from that plan
and the checker must find every planted violation and nothing else.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.judge import check_history
from tests.checker.histories import HistoryBuilder, digest, oracle_for

FATES = ("once", "twice", "corrupt", "never")


@st.composite
def delivery_plans(draw):
    task_ids = draw(st.lists(st.one_of(st.integers(0, 20), st.sampled_from("abcdef")),
                             min_size=1, max_size=6, unique=True))
    outputs = [(task_id, (i,)) for task_id in task_ids
               for i in range(draw(st.integers(1, 3)))]
    fates = {output: draw(st.sampled_from(FATES)) for output in outputs}
    failed = draw(st.sets(st.sampled_from(task_ids)))
    strays = draw(st.lists(st.tuples(st.sampled_from(task_ids), st.integers(5, 7)),
                           max_size=2, unique=True))
    ended = draw(st.booleans())
    return outputs, fates, failed, [(t, (i,)) for t, i in strays], ended


@settings(max_examples=150, deadline=None)
@given(delivery_plans())
def test_the_checker_finds_exactly_the_planted_violations(plan):
    outputs, fates, failed, strays, ended = plan
    history = HistoryBuilder(task_registry=None, max_task_replicas=0)
    history.fault(worker=0)  # a fault, so the model allows loud failures
    seqs: dict[tuple, list[int]] = {}
    for output, fate in fates.items():
        task_id, index = output
        if fate in ("once", "twice"):
            seqs[output] = [history.deliver(task_id, index)]
        if fate == "twice":
            seqs[output].append(history.deliver(task_id, index))
        if fate == "corrupt":
            seqs[output] = [history.deliver(task_id, index, value_digest=digest("x", index))]
    for task_id, index in strays:
        history.deliver(task_id, index)
    for task_id in sorted(failed, key=repr):
        history.step_error(task_id)  # the fault reached it: a loud failure is allowed
        history.task_failed(task_id)
    if ended:
        history.end("failed" if failed else "completed")

    verdict = check_history(history.events, oracle_for(outputs))
    found = {kind: {(v.task_id, v.index) for v in items if v.task_id is not None}
             for kind, items in verdict.by_kind().items()}

    undelivered = {o for o, fate in fates.items() if fate == "never" and o[0] not in failed}
    assert found["duplicated"] == {o for o, fate in fates.items() if fate == "twice"}
    assert found["corrupted"] == {o for o, fate in fates.items() if fate == "corrupt"}
    assert found["unexpected"] == set(strays)
    assert found["lost"] == (undelivered if ended else set())
    assert found["hung"] == (set() if ended else undelivered)
    assert found["reported-failed"] == set()  # the model allowed every loud failure
    for violation in verdict.by_kind()["duplicated"]:
        assert list(violation.seqs) == seqs[(violation.task_id, violation.index)]
    planted = any(fate != "once" and not (fate == "never" and o[0] in failed)
                  for o, fate in fates.items())
    assert verdict.valid == (ended and not planted and not strays)
