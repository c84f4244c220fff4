"""A scheduler plugin that reports worker arrivals and departures, and where each scatter
went, on a topic of its own.

Why not subscribe to the scheduler's "all" topic, which has them too: other events on
"all" (for example the one `Client.replicate` logs) hold objects that cannot be sent to
a client, and a subscriber's connection is closed when one is. This plugin sends only
plain data: the worker's address, pid and nanny on arrival; on departure, whether it
was expected (or a retirement) and which tasks the scheduler lost with it; for each
scatter, the workers its keys went to (a lockstep replay puts its own where the
original's went: `chaos.harness.placement`); for each step Dask's stealer moved, from
where to where (`chaos.harness.steal_order`).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

PLUGIN_NAME = "chaos-membership"


class MembershipReporter(SchedulerPlugin):
    """Logs `{"action": "add-worker" | "remove-worker" | "scatter-placed" | "step-stolen",
    ...}` events to `topic`."""

    name = PLUGIN_NAME

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._scheduler: Any = None  # set by `start`, when the scheduler installs it

    def add_worker(self, scheduler: Any, worker: str) -> None:
        state = scheduler.workers.get(worker)
        scheduler.log_event(self.topic, {
            "action": "add-worker", "worker": worker, "time": time.time(),
            "pid": getattr(state, "pid", None), "nanny": getattr(state, "nanny", None),
        })

    def remove_worker(self, scheduler: Any, worker: str, *, stimulus_id: str,
                      **kwargs: Any) -> None:
        removal = _last_removal(scheduler, worker)
        scheduler.log_event(self.topic, {
            "action": "remove-worker", "worker": worker, "time": time.time(),
            "expected": bool(removal.get("expected")),
            "retired": stimulus_id.startswith("retire-workers"),  # Scheduler.retire_workers
            "processing-tasks": sorted(map(str, removal.get("processing-tasks", ()))),
            "lost-computed-tasks": sorted(map(str, removal.get("lost-computed-tasks", ()))),
            "lost-scattered-tasks": sorted(map(str, removal.get("lost-scattered-tasks", ()))),
        })

    def log_event(self, topic: str, msg: Any) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        # WorkStealing.move_task_confirm logs ("confirm", key, state, victim, thief, id)
        # once the victim gave the step up and it went to the thief.
        if topic == "stealing" and isinstance(msg, tuple) and msg[:1] == ("confirm",):
            scheduler.log_event(self.topic, {
                "action": "step-stolen", "time": time.time(), "key": str(msg[1]),
                "victim": str(msg[3]), "thief": str(msg[4]),
            })
            return
        # Scheduler.scatter logs to the client's topic and to "all", once placed.
        if topic != "all" or not isinstance(msg, dict) or msg.get("action") != "scatter":
            return
        placed = _last_scattered(scheduler, int(msg.get("count") or 0))
        scheduler.log_event(self.topic, {
            "action": "scatter-placed", "time": time.time(),
            "keys": [str(ts.key) for ts in placed],
            "workers": [min((ws.address for ws in ts.who_has or ()), default=None)
                        for ts in placed],
        })

    async def start(self, scheduler: Any) -> None:
        self._scheduler = scheduler


def _last_scattered(scheduler: Any, count: int) -> list[Any]:
    """The tasks of the scatter just logged: Scheduler.scatter logs it right after
    `update_data`, with no await between, and the scheduler's task dict keeps the order
    tasks were made in, so they are its last `count` tasks (an unhashed scatter's keys
    are new). Checked: data without a run_spec, in memory. At most the last 100: a naive
    loop scatters each next input on its own."""
    tasks = list(itertools.islice(reversed(scheduler.tasks.values()), min(count, 100)))
    return [ts for ts in reversed(tasks) if ts.run_spec is None and ts.state == "memory"]


def _last_removal(scheduler: Any, worker: str) -> dict[str, Any]:
    # Scheduler.remove_worker logs what it lost to the worker's own topic just before
    # it calls plugins: read it back rather than recompute it.
    try:
        events = scheduler.get_events(worker)
    except Exception:  # missing detail must not break the scheduler
        return {}
    for _, message in reversed(events):
        if isinstance(message, dict) and message.get("action") == "remove-worker":
            return message
    return {}
