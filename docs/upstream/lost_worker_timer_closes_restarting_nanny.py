"""A LocalCluster closes a nanny for good while it restarts its worker, when an earlier
removal of that worker's name timed out just then.

Real trigger, no injection: a LocalCluster of one nanny worker. The worker process is
SIGKILLed; its nanny restarts it, and it is back in a fraction of a second. When the
scheduler removed it, `SpecCluster._update_worker_status` started a timer of
`distributed.deploy.lost-worker-timeout` (15 s): when it fires, the nanny is closed if
no worker of that name is registered *at that instant*. The timer is not cancelled when
the worker comes back. So a second kill placed just before it fires (as preemptions
every few seconds do, now and then) has its restart cut short: the new worker
registers, takes tasks, and is closed; the cluster has lost the worker for good.

Run: python docs/upstream/lost_worker_timer_closes_restarting_nanny.py
"""

from __future__ import annotations

import logging
import os
import signal
import time

import dask
import distributed
from distributed import Client, LocalCluster

HARD_LIMIT = 85  # seconds, for the whole script
AHEAD = 0.04  # the second kill, this long before the first removal's timer fires


def when(condition, wait: float) -> float | None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.001)
    return None


def main() -> None:
    signal.alarm(HARD_LIMIT)
    print("distributed", distributed.__version__)
    timeout = dask.utils.parse_timedelta(
        dask.config.get("distributed.deploy.lost-worker-timeout"))
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                         dashboard_address=":0", worker_port=0,
                         silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        [name] = cluster.workers
        registered = lambda: any(w["name"] == name  # noqa: E731
                                 for w in cluster.scheduler_info["workers"].values())
        pid = next(iter(client.run(os.getpid).values()))
        os.kill(pid, signal.SIGKILL)
        removed = when(lambda: not registered(), 5)
        back = when(registered, 10)
        assert removed is not None and back is not None, "the first restart did not happen"
        print(f"killed; back after {back - removed:.2f} s; the removal's timer fires "
              f"{timeout:g} s after it")
        time.sleep(max(0.0, removed + timeout - AHEAD - time.monotonic()))
        pid = next(iter(client.run(os.getpid).values()))
        os.kill(pid, signal.SIGKILL)
        rejoined = when(registered, 10)
        time.sleep(2.0)
        nanny = cluster.workers.get(name)
        print(f"killed again {AHEAD} s before the timer; rejoined: {rejoined is not None}; "
              f"nanny now: {nanny.status.name if nanny else 'closed and dropped'}; "
              f"workers registered: {len(cluster.scheduler_info['workers'])}")
        if nanny is None or not registered():
            print("BUG PRESENT: the LocalCluster closed the nanny while it restarted its "
                  "worker, on the timer of an earlier removal of a worker that had come back")
        else:
            print("NOT REPRODUCED: the nanny restarted its worker and kept it")


if __name__ == "__main__":
    main()
