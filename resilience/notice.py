"""Using a preemption's notice: SIGTERM becomes a graceful retirement before the SIGKILL.

A preempted machine gets SIGTERM, then SIGKILL some seconds later (AWS spot 120 s, GCP
and Azure spot 30 s, SLURM's KillWait 30 s). On SIGTERM, `dask worker` closes its nanny,
which kills the worker *without* retiring it (dask/distributed#2779): results held only
there are lost and recomputed, scattered inputs held only there are lost. With this
plugin, a SIGTERM instead

1. stops the worker from taking new tasks (status `closing_gracefully`),
2. lets running steps go on for up to `drain` of the notice, so that work is not wasted,
3. asks the scheduler to retire the worker (`retire_workers`): data held only there is
   copied to other workers, steps still running are handed back and rescheduled,
4. and the worker exits, before the SIGKILL.

The nanny's own SIGTERM handler (`dask worker`'s) is delayed until its worker has left
(bounded by the notice), so that it does not kill the worker mid-retirement.

Installed with one call, or as a preload (the same module, on the nanny and the worker):

    resilience.install_notice_handler(client, notice=30)
    dask worker tls://scheduler:8786 --preload resilience.notice --preload-nanny resilience.notice

`notice` (seconds) comes from the argument, else Dask's config `resilience.notice.seconds`
(env `DASK_RESILIENCE__NOTICE__SECONDS`), else 30.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from typing import Any

import dask.config
from distributed import Client, Nanny, Worker
from distributed.core import Status
from distributed.diagnostics.plugin import NannyPlugin, WorkerPlugin

logger = logging.getLogger(__name__)

PLUGIN_NAME = "resilience-notice"
DEFAULT_NOTICE = 30.0
DRAIN = 0.5  # share of the notice that running steps may use to finish
MARGIN = 0.1  # share of the notice kept free before the SIGKILL


def install_notice_handler(client: Client, notice: float | None = None) -> None:
    """Turn SIGTERM into a graceful retirement on every worker and nanny of `client`'s
    cluster, now and for workers that join later."""
    seconds = _notice(notice)
    client.register_plugin(NoticeWorkerPlugin(seconds), name=PLUGIN_NAME)
    client.register_plugin(NoticeNannyPlugin(seconds), name=PLUGIN_NAME)


def uninstall_notice_handler(client: Client) -> None:
    """Undo `install_notice_handler` (SIGTERM handlers are restored)."""
    for nanny in (False, True):
        with contextlib.suppress(Exception):
            client.unregister_worker_plugin(PLUGIN_NAME, nanny=nanny)


class NoticeWorkerPlugin(WorkerPlugin):
    """In the worker process: on SIGTERM, drain, retire through the scheduler, exit."""

    name = PLUGIN_NAME

    def __init__(self, notice: float | None = None) -> None:
        self.notice = _notice(notice)
        self._previous: Any = None

    async def setup(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()

        def on_sigterm(signum: int, frame: Any) -> None:
            # No logging in a signal handler: hand over to the event loop.
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(
                retire_on_notice(worker, self.notice)))

        self._previous = _install(signal.SIGTERM, on_sigterm)

    async def teardown(self, worker: Worker) -> None:
        _restore(signal.SIGTERM, self._previous)


class NoticeNannyPlugin(NannyPlugin):
    """In the nanny process: on SIGTERM, wait for the worker to retire, then close as
    `dask worker` would. Does nothing where the nanny shares its process with other
    code (a LocalCluster's nannies live in the client's process)."""

    name = PLUGIN_NAME
    restart = False

    def __init__(self, notice: float | None = None) -> None:
        self.notice = _notice(notice)
        self._previous: Any = None

    async def setup(self, nanny: Nanny) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # a nanny inside another program (a LocalCluster): leave its signals
        _check_start_method()
        loop = asyncio.get_running_loop()
        previous: Any = None

        def on_sigterm(signum: int, frame: Any) -> None:
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(
                _close_after_retirement(nanny, self.notice, previous, signum)))

        previous = self._previous = _install(signal.SIGTERM, on_sigterm)

    async def teardown(self, nanny: Nanny) -> None:
        _restore(signal.SIGTERM, self._previous)


async def retire_on_notice(worker: Worker, notice: float) -> None:
    """Drain, retire and close `worker` within `notice` seconds (less a margin)."""
    started = time.monotonic()
    deadline = started + notice * (1 - MARGIN)
    if worker.status not in (Status.running, Status.paused):
        return
    logger.info("SIGTERM: retiring %s within %.1f s", worker.address, notice)
    worker.status = Status.closing_gracefully  # the scheduler sends it nothing new
    drain_until = started + notice * DRAIN
    while worker.state.executing_count and time.monotonic() < drain_until:
        await asyncio.sleep(0.05)
    with contextlib.suppress(Exception):  # past the deadline, the SIGKILL decides anyway
        await asyncio.wait_for(
            worker.scheduler.retire_workers(workers=[worker.address], close_workers=True,
                                            remove=True, stimulus_id=f"notice-{time.time()}"),
            timeout=max(0.1, deadline - time.monotonic()))
    if worker.status not in (Status.closing, Status.closed):
        await worker.close(nanny=True, reason="preemption-notice",
                           timeout=max(0.1, deadline - time.monotonic()))


async def _close_after_retirement(nanny: Nanny, notice: float, previous: Any,
                                  signum: int) -> None:
    deadline = time.monotonic() + notice * (1 - MARGIN / 2)
    if nanny.status == Status.running:
        # Do not restart the worker when it exits; the nanny then closes by itself.
        nanny.status = Status.closing_gracefully
    while nanny.is_alive() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if nanny.status == Status.closed:
        return
    if callable(previous):  # `dask worker`'s handler: close the nanny and exit
        previous(signum, None)
    else:
        await nanny.close(timeout=1, reason="preemption-notice")


def _install(sig: int, handler: Any) -> Any:
    """Set a handler from the main thread only (else a no-op, returning None)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(sig, handler)


def _restore(sig: int, previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(sig, previous)


def _check_start_method() -> None:
    """Refuse the `forkserver` start method: a preemption's SIGTERM reaches the nanny's
    forkserver too, and a nanny whose forkserver died reads its still-running worker as
    exited (status 255), then drops it in the middle of its retirement."""
    method = dask.config.get("distributed.worker.multiprocessing-method", "spawn")
    if method == "forkserver":
        from resilience.errors import ConfigError

        raise ConfigError(
            "distributed.worker.multiprocessing-method='forkserver' defeats the notice "
            "plugin: the preemption's SIGTERM kills the forkserver, and the nanny then drops "
            "its worker mid-retirement. Use 'spawn' (dask's default): unset "
            "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD."
        )


def _notice(notice: float | None) -> float:
    value = notice if notice is not None else dask.config.get("resilience.notice.seconds",
                                                              DEFAULT_NOTICE)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        from resilience.errors import ConfigError

        raise ConfigError(f"notice={value!r} must be a number of seconds > 0: the time from "
                          "SIGTERM to SIGKILL on your machines (30 on SLURM and GCP).")
    return seconds


async def dask_setup(service: Worker | Nanny) -> None:
    """The preload entry point: `--preload resilience.notice --preload-nanny resilience.notice`."""
    plugin: Any = (NoticeNannyPlugin() if isinstance(service, Nanny) else NoticeWorkerPlugin())
    await plugin.setup(service)
