"""When a retirement loses data it should have moved, the run records each lost key's
story from the scheduler and every worker, so the history says where its copies went.

The loss is made the way a focused campaign found it: a copy on a worker that a
retirement left over from earlier still names (Dask's RetireWorker drops it), and a
retirement of the other holder while a step that needs the data runs there.
"""

from __future__ import annotations

import time

from distributed.active_memory_manager import RetireWorker

from chaos.harness.stories import record_stories
from chaos.history import HistoryWriter


def slow_step(value):
    time.sleep(1.0)
    return value


def test_a_retirement_that_lost_data_is_reported_and_the_story_names_the_drop(harness):
    client = harness.client
    retired, other, _ = sorted(harness.settle().workers)
    key = "storied-input"
    [placed] = client.scatter({key: b"x" * 1000}, workers=[retired], hash=False).values()
    client.replicate([placed], n=2, workers=[retired, other])
    client.run_on_scheduler(_retire_later, other)  # left over: the next settle takes it out
    step = client.submit(slow_step, placed, workers=[retired], allow_other_workers=True,
                         pure=False)
    try:
        _until(lambda: client.processing(retired).get(retired))
        client.retire_workers([retired], close_workers=True)
        removal = _last_removal(client, harness.membership_topic, retired)
        assert removal["retired"] and key in removal["lost-scattered-tasks"]

        history = HistoryWriter()
        record_stories(client, [key], history)
        [event] = history.events
        assert event["type"] == "key-story" and event["key"] == key
        where = {entry[0] for entry in event["story"]}
        assert "scheduler" in where and other in where
        # The other holder's copy went in a pass of the AMM, the retirement's own.
        assert any(entry[0] == other and "remove-replica" in entry
                   and str(entry[-2]).startswith("active_memory_manager")
                   for entry in event["story"]), event["story"]
        assert [entry[-1] for entry in event["story"]] == sorted(
            entry[-1] for entry in event["story"])
    finally:
        step.release()
        del placed
        harness.settle()


def _retire_later(address: str, dask_scheduler=None) -> None:
    dask_scheduler.extensions["amm"].add_policy(RetireWorker(address))


def _last_removal(client, topic: str, worker: str) -> dict:
    for _, message in reversed(client.get_events(topic)):
        if message.get("action") == "remove-worker" and message.get("worker") == worker:
            return message
    raise AssertionError(f"no removal of {worker} on {topic}")


def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
