"""The steps queued on a worker as it finished one, kept so in a lockstep replay.

A worker with one thread picks its next step among those it has when a step ends.
Start order (`chaos.harness.start_order`) ranks the steps it has; it cannot choose one
that has not reached it yet. A naive loop submits each next step as the client takes a
result, and the submit takes a few milliseconds to reach its worker (client, scheduler,
worker, on streams batched every 2 ms). Where the original's worker had it by the time
its step ended, a replay's worker could end its step first, and start another (nightly
--seed 8642's `s011`: t1's step 1 was on its worker when that worker's step ended in
the original, and started there next; in every replay it came a little later, and the
worker started t3's step 0 instead).

So a lockstep replay holds a step's result, on its worker, until the steps that worker
started next in the original, and that the client had submitted before the result was
done, have reached it (`queued_behind`; the board side is `chaos.probes.turns`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaos.harness.death_race import Done, Result, numbered
from chaos.harness.start_order import Submission


def queued_behind(history: Sequence[Mapping[str, Any]], done: Sequence[Done]
                  ) -> tuple[tuple[Result, Submission], ...]:
    """Each result (`done`: `results_done`) after which its worker process next started
    a step the client had submitted before the result was done, with that submission.
    Not a step Dask's stealer moved (`step-stolen`): it may have reached that worker by
    stealing, which a replay does not wait for."""
    stolen = {str(event.get("key")) for event in history if event["type"] == "step-stolen"}
    submitted = {str(event["key"]): ((step, nth), float(event["time"]))
                 for event, step, nth in numbered(history, "submit")
                 if event.get("key") and str(event["key"]) not in stolen}
    invokes = {event["execution"]: (position, event) for position, event in enumerate(history)
               if event["type"] == "invoke" and event.get("execution")}
    held: list[tuple[Result, Submission]] = []
    for result in done:
        _, invoke = invokes[history[result.position]["execution"]]  # as results_done found it
        following = min((at for at, nxt in invokes.values()
                         if at > result.position and nxt.get("worker") == invoke.get("worker")
                         and nxt.get("pid") == invoke.get("pid")), default=None)
        if following is None:
            continue
        submission, when = submitted.get(str(history[following].get("key")), (None, None))
        if submission is not None and when is not None and when < result.at:
            held.append((result.result, submission))
    return tuple(held)
