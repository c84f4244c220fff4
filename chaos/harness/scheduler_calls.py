"""Functions the harness runs on the scheduler (`Client.run_on_scheduler`).

Client.run_on_scheduler passes arguments positionally: `dask_scheduler` comes last.
Those asked during a run are asked with `callback_timeout=CALL_TIMEOUT`: a scheduler a
fault killed would otherwise hold the asking decision, and every held probe with it,
until the run's timeout.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from distributed import utils_comm
from distributed.active_memory_manager import RetireWorker
from distributed.core import Status

# Seconds a question asked of the scheduler during a run may take (each takes a few ms).
CALL_TIMEOUT = 5.0


def rerank(priorities: dict[str, int], worker: str,
           dask_scheduler: Any = None) -> list[list[Any]]:
    """Give each step on `worker` named in `priorities` that Dask priority, for when it
    runs again elsewhere (`chaos.harness.start_order.rerun_priorities`): [key, priority]
    of each one changed."""
    ws = dask_scheduler.workers.get(worker)
    changed = []
    for ts in () if ws is None else ws.processing:
        if ts.key in priorities and ts.priority:
            ts.priority = (-priorities[ts.key], *ts.priority[1:])
            changed.append([ts.key, priorities[ts.key]])
    return changed


def scheduler_snapshot(dask_scheduler: Any) -> dict[str, Any]:
    return {
        "workers": {address: {"pid": ws.pid, "nanny": ws.nanny}
                    for address, ws in dask_scheduler.workers.items()
                    if ws.status == Status.running},
        "n_tasks": len(dask_scheduler.tasks),
        "allowed_failures": dask_scheduler.allowed_failures,
    }


async def start_run_order_afresh(stealing: bool = True, dask_scheduler: Any = None) -> bool:
    """Start afresh the three things the scheduler carries from one run to the next and
    uses to order or place a run's work, so that a run (and its replay) does not depend
    on when the runs before it ended; then start Dask's work stealing, or stop it, for
    the run (`chaos.harness.steal_order`), and return whether it runs. The three things:

    - the scatter round robin: a scatter's items go to the workers sorted by address,
      from a module-wide counter that every earlier scatter moved on. Reset, every run's
      first scattered item goes to the first worker, as in the run it replays;
    - the submission generations: a submission less than `fifo_timeout` (100 ms) after
      the last generation began joins it, and ranks with it rather than after it. Reset,
      every run's first submission begins a generation, as on a fresh scheduler, instead
      of joining the harness's own check task submitted just before (or not, as the
      milliseconds fell);
    - Dask's retirements left over (`forget_left_over_retirements`).
    """
    counter = getattr(utils_comm, "_round_robin_counter", None)
    if isinstance(counter, list) and counter:
        counter[0] = 0
    if hasattr(dask_scheduler, "_last_time"):
        dask_scheduler._last_time = 0.0
    forget_left_over_retirements(dask_scheduler)
    stealer = dask_scheduler.extensions.get("stealing")  # None when configured off
    if stealer is None:
        return False
    await (stealer.start() if stealing else stealer.stop())  # each idempotent
    return stealing


def forget_left_over_retirements(dask_scheduler: Any) -> None:
    """Take out of the main AMM each RetireWorker policy naming a worker not retiring.

    Dask's policy names its worker by address and leaves only on a pass that finds no
    worker there. A refill that comes back at the retired worker's address (the local
    backend's fixed ports) is adopted by it: its copies are dropped wherever another
    exists, at every pass, for as long as it holds data only it has. A focused campaign
    (150 runs) found one at the start of 4 runs in a row, after a retirement. (The
    library takes them out too; the harness does not lean on the code it tests.)
    """
    amm = dask_scheduler.extensions.get("amm")
    for policy in list(amm.policies if amm is not None else ()):
        worker = dask_scheduler.workers.get(getattr(policy, "address", None))
        if (isinstance(policy, RetireWorker) and worker is not None
                and worker.status != Status.closing_gracefully):
            amm.policies.discard(policy)


async def retire_holding_open(address: str, keys: list[str], patience: float,
                              dask_scheduler: Any = None) -> list[str]:
    """The first half of a retirement held open (`Inflictor.retire_holding_open`):
    retire `address` without closing it (Dask moves the data only it holds, and gives
    it no new step), then wait up to `patience` seconds while any of `keys` is still
    processing there. The keys that still were."""
    await dask_scheduler.retire_workers(workers=[address], close_workers=False, remove=False)

    def running_there() -> list[str]:
        tasks = (dask_scheduler.tasks.get(key) for key in keys)
        return [ts.key for ts in tasks if ts is not None and ts.state == "processing"
                and ts.processing_on is not None and ts.processing_on.address == address]

    deadline = time.monotonic() + patience
    while (waiting := running_there()) and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    return waiting


async def remove_retired(address: str, dask_scheduler: Any = None) -> None:
    """The end of a retirement held open whose original lost what its victim finished
    as it retired (`Inflictor.retire_holding_open`): remove and close it, as Dask's
    retirement does once it has moved what it saw, without another look."""
    if address in dask_scheduler.workers:
        await dask_scheduler.remove_worker(address, expected=True, close=True,
                                           stimulus_id=f"chaos-retired-{time.time()}")


def dependency_holders(key: str, dask_scheduler: Any = None) -> list[str]:
    task = dask_scheduler.tasks.get(key)
    if task is None:
        return []
    return sorted({ws.address for dep in task.dependencies for ws in dep.who_has or ()})


def set_allowed_failures(value: int, dask_scheduler: Any = None) -> None:
    dask_scheduler.allowed_failures = value


def leftover_tasks(dask_scheduler: Any = None) -> list[str]:
    # who_wants, who_has and dependents may be None (empty) in recent distributed.
    return [f"{key} ({ts.state}, wanted by {sorted(c.client_key for c in ts.who_wants or ())}, "
            f"held by {sorted(ws.address for ws in ts.who_has or ())}, "
            f"{len(ts.dependents or ())} dependents, {len(ts.dependencies or ())} dependencies)"
            for key, ts in list(dask_scheduler.tasks.items())[:5]]


def forget_orphans(dask_scheduler: Any = None) -> list[str]:
    """Forget tasks that no client wants and nothing depends on (between runs only)."""
    orphans = [key for key, ts in dask_scheduler.tasks.items()
               if not ts.who_wants and not ts.dependents]
    if orphans:
        dask_scheduler.transitions({key: "forgotten" for key in orphans},
                                   stimulus_id=f"chaos-forget-orphans-{time.time()}")
    return [str(key) for key in orphans]


def release_client_keys(client_id: str, dask_scheduler: Any = None) -> int:
    """Release every key `client_id` wants, also through a ClientState the scheduler no
    longer lists: a scatter that reaches a new scheduler before its reconnecting client
    registers makes one, `add_client` replaces it, and distributed (2026.8) then ignores
    the client's own releases of its keys, even when the client closes."""
    listed = dask_scheduler.clients.get(client_id)
    states = [] if listed is None else [listed]
    states += list({id(cs): cs for ts in dask_scheduler.tasks.values()
                    for cs in ts.who_wants or ()
                    if cs.client_key == client_id and cs is not listed}.values())
    recommendations: dict[Any, str] = {}
    released = 0
    for state in states:
        keys = [ts.key for ts in state.wants_what]
        dask_scheduler._client_releases_keys(keys=keys, cs=state,
                                             recommendations=recommendations)
        released += len(keys)
    dask_scheduler.transitions(recommendations, stimulus_id=f"chaos-reset-{time.time()}")
    return released


def running_worker_names(dask_scheduler: Any = None) -> list[str]:
    """The names of the workers in state running (a refill counts these)."""
    return [str(ws.name) for ws in dask_scheduler.workers.values()
            if ws.status == Status.running]


def worker_name(address: str, dask_scheduler: Any = None) -> str | None:
    """The name of the worker at `address`, None when there is none (asked on the
    scheduler: `Client.scheduler_info()` may return a view that lists no worker)."""
    ws = dask_scheduler.workers.get(address)
    return None if ws is None else str(ws.name)


def lone_keys(address: str, dask_scheduler: Any = None) -> dict[str, list[str]]:
    """The keys only worker `address` holds, each with the keys of the tasks that need it."""
    ws = dask_scheduler.workers.get(address)
    if ws is None:
        return {}
    return {str(ts.key): sorted(str(d.key) for d in ts.dependents)
            for ts in ws.has_what if len(ts.who_has) == 1}


def key_holders(keys: list[str], dask_scheduler: Any = None) -> dict[str, list[str]]:
    """The workers holding each of `keys` in memory."""
    tasks = dask_scheduler.tasks
    return {key: sorted(ws.address for ws in tasks[key].who_has or ())
            for key in keys if key in tasks}


async def copy_keys(copies: dict[str, list[str]], holder: str,
                    dask_scheduler: Any = None) -> list[str]:
    """Copy keys from worker `holder` to others ({recipient: [key, ...]}); the keys that
    could not be copied."""
    failed: list[str] = []
    for recipient, keys in copies.items():
        failed += map(str, await dask_scheduler.gather_on_worker(
            recipient, {key: [holder] for key in keys}))
    return failed


def request_steal(key: str, victim: str, thief: str, dask_scheduler: Any = None) -> str | None:
    """Ask `victim` to give queued step `key` up to `thief`, as Dask's stealer asks (its
    answer goes to the stealer, as a steal's does, whether or not the stealer balances);
    None once asked, or why it was not."""
    stealer = dask_scheduler.extensions.get("stealing")
    task = dask_scheduler.tasks.get(key)
    victim_state = dask_scheduler.workers.get(victim)
    thief_state = dask_scheduler.workers.get(thief)
    if stealer is None:
        return "Dask's work stealing is configured off"
    if task is None or victim_state is None or thief_state is None:
        return "the step, its victim or its thief is gone"
    if task.processing_on is not victim_state:
        return "the step is not on its victim"
    sent = stealer.move_task_request(task, victim_state, thief_state)
    return None if sent.startswith("steal-") else sent
