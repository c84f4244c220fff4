"""A scheduler plugin that reports worker arrivals and departures on a topic of its own.

Why not subscribe to the scheduler's "all" topic, which has them too: other events on
"all" (for example the one `Client.replicate` logs) hold objects that cannot be sent to
a client, and a subscriber's connection is closed when one is. This plugin sends only
plain data: the worker's address, pid and nanny on arrival; on departure, whether it
was expected (or a retirement) and which tasks the scheduler lost with it.
"""

from __future__ import annotations

import time
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

PLUGIN_NAME = "chaos-membership"


class MembershipReporter(SchedulerPlugin):
    """Logs `{"action": "add-worker" | "remove-worker", ...}` events to `topic`."""

    name = PLUGIN_NAME

    def __init__(self, topic: str) -> None:
        self.topic = topic

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
