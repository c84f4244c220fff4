"""A client that no longer hears its scheduler ends the run at once, saying why.

Dask's client reads the scheduler's reports (results, lost keys) in one task, which
also reconnects after a loss, and is never started again once it ends. It ends on a
"stream-closed" or "close" message from a live scheduler, with the client still
"running": results are then never reported, and a run would wait for ever. (Over TLS it
also ends on a reconnection error Dask does not retry: tests/deploy/test_scheduler_loss.)
"""

from __future__ import annotations

import threading
import time
from typing import Any

from distributed import Client

from resilience import ResilientCluster, SchedulerLost


def slow(payload: Any, **_: Any) -> Any:
    time.sleep(0.5)
    return payload


def close_report_stream(client_id: str, dask_scheduler: Any = None) -> None:
    """What a live scheduler sends a client whose stream it stops serving."""
    dask_scheduler.client_comms[client_id].send({"op": "stream-closed"})


def test_a_client_that_no_longer_hears_its_scheduler_ends_the_run_saying_why(local_cluster):
    own = Client(local_cluster)
    outcome: dict[str, Any] = {}

    def run() -> None:
        rc = ResilientCluster(own, [{"task_id": n} for n in range(4)], input="x",
                              task_registry="memory")
        try:
            rc.distribute([slow, slow])
        except BaseException as error:
            outcome["error"] = error

    session = threading.Thread(target=run, daemon=True)
    try:
        session.start()
        time.sleep(0.3)  # step 0 under way
        own.run_on_scheduler(close_report_stream, own.id)
        session.join(timeout=15)
        assert not session.is_alive(), "the run waited on a client that hears nothing"
        assert own.status == "running" and own._handle_report_task.done()
    finally:
        own.close()
        session.join(timeout=10)
    error = outcome["error"]
    assert isinstance(error, SchedulerLost), repr(error)
    assert "no longer hears its scheduler" in str(error) and "report stream" in str(error)
    assert error.failed
