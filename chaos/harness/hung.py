"""What a hung run's folder says about the hang (`hung-stacks.txt`): every thread's
stack when the run's bound passed, then what the scheduler knew of each future the
client still waited on and of each worker, then what each worker knew of those keys.

The stacks say where the client waited; the rest says why, when Dask itself never ran
a task (a nightly found a task `processing` on a live worker that never started it).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from typing import Any

from resilience.phantom import ask_each_worker

WORKER_ANSWER = 2.0  # seconds for each worker's view; a frozen worker answers nothing


def describe_hang(client: Any) -> str:
    return _thread_stacks() + _cluster_view(client)


def _thread_stacks() -> str:
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "\n".join(
        f"--- thread {names.get(ident, ident)}\n{''.join(traceback.format_stack(frame))}"
        for ident, frame in sys._current_frames().items())


def _scheduler_state(keys: list[str], dask_scheduler: Any = None) -> list[dict[str, Any]]:
    """On the scheduler: what it knows of each key and of the keys it waits on, then of
    each worker."""
    def task(key: Any) -> dict[str, Any]:
        ts = dask_scheduler.tasks.get(key)
        if ts is None:
            return {"key": str(key), "state": "forgotten"}
        return {"key": str(key), "state": ts.state,
                "who_has": sorted(ws.address for ws in ts.who_has or ()),
                "processing_on": ts.processing_on.address if ts.processing_on else None,
                "waiting_on": sorted(str(dep.key) for dep in ts.waiting_on or ()),
                "dependencies": [
                    {"key": str(dep.key), "state": dep.state,
                     "who_has": sorted(ws.address for ws in dep.who_has or ())}
                    for dep in ts.dependencies]}
    now = time.time()
    workers = [{"worker": ws.address, "status": str(ws.status), "pid": ws.pid,
                "processing": sorted(str(ts.key) for ts in ws.processing),
                "silent_for": round(now - ws.last_seen, 3)}
               for ws in dask_scheduler.workers.values()]
    return [task(key) for key in keys] + workers


def _worker_state(keys: list[str], dask_worker: Any = None) -> dict[str, Any]:
    """On a worker: its own state of each of `keys` it knows, and whether it holds it."""
    tasks = dask_worker.state.tasks
    return {str(key): {"state": tasks[key].state if key in tasks else None,
                       "held": key in dask_worker.data}
            for key in keys if key in tasks or key in dask_worker.data}


def _cluster_view(client: Any) -> str:
    """What the scheduler knows of the futures the client still waits on, and of its
    workers, then what each worker knows of them and of their inputs: a hang the
    threads' stacks cannot explain (a task Dask never ran)."""
    keys = [key for key, state in list(client.futures.items()) if state.status == "pending"]
    try:
        state = client.run_on_scheduler(_scheduler_state, keys, callback_timeout=10)
    except Exception as error:  # a scheduler gone or stuck is worth saying as well
        return f"\n--- scheduler: could not be asked ({error!r})\n"
    view = ("\n--- scheduler: the client's pending futures, then its workers\n"
            + "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in state))
    asked = keys + [dep["key"] for entry in state for dep in entry.get("dependencies", ())]
    workers = [entry["worker"] for entry in state if "worker" in entry]

    answers = ask_each_worker(client, _worker_state, dict.fromkeys(workers, asked),
                              WORKER_ANSWER)
    return view + "--- workers: their own state of those keys\n" + "".join(
        json.dumps({"worker": address, "keys": f"no answer ({type(known).__name__})"
                    if isinstance(known, BaseException) else known}, sort_keys=True) + "\n"
        for address, known in answers.items())
