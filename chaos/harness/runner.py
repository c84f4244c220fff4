"""`run_schedule`: one schedule, one target, one workload, on a reused cluster.

A run is bounded in time: past `timeout` the target is aborted and the run ends with
the verdict "hung", its history so far intact. Whatever happens, the run ends with
every freeze undone (no SIGSTOPped process outlives it), the worker probes flushed,
unfinished executions reported as `info`, and a `run-end` event. Worker replacement
is started as the run ends and awaited only when the next run starts, so it overlaps
with whatever the caller does in between.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from chaos.errors import ClusterError
from chaos.harness.arming import probe_plan
from chaos.harness.cluster import ChaosCluster
from chaos.harness.coordinator import Coordinator
from chaos.harness.hung import describe_hang
from chaos.harness.inflict import Inflictor
from chaos.harness.lockstep import DEFAULT_PATIENCE, Lockstep
from chaos.harness.refill import FleetRefill, RefillPolicy
from chaos.harness.replay_order import ReplayOrder
from chaos.harness.retire_moves import RetireMoves
from chaos.harness.steal_order import ask_steals
from chaos.harness.stories import record_stories
from chaos.harness.targets import Target, TargetConfig, TargetRun, make_target
from chaos.history import HISTORY_FILE, HistoryWriter, git_commit, versions
from chaos.probes import probed
from chaos.spec import FaultSchedule
from chaos.workload import Workload

RunStatus = Literal["completed", "failed", "hung", "crashed"]
STACKS_FILE = "hung-stacks.txt"  # beside the history of a hung run


@dataclass(frozen=True)
class RunRecord:
    """The outcome of one run: its status and its whole history (also on disk if asked)."""

    run_id: str
    target: str
    config: dict[str, Any]
    schedule: FaultSchedule
    workload: Workload
    seed: int
    status: RunStatus
    makespan: float
    error: str | None
    history: tuple[dict[str, Any], ...]
    history_path: Path | None
    # Seconds spent in each phase: settle (waiting for the cluster), run, wrap-up.
    phases: dict[str, float]

    def events(self, type: str) -> list[dict[str, Any]]:
        return [event for event in self.history if event["type"] == type]

    @property
    def faults_injected(self) -> int:
        return len(self.events("fault"))

    def fault_points(self) -> list[tuple[Any, ...]]:
        """Where each fault fired, in schedule order: (fault_id, kind, trigger type, watched
        task, step, fraction, point). The watched task is the task_id the trigger names,
        or "nth=N" (which task started N-th may differ from run to run). Replaying a
        schedule gives the same list (`python -m chaos replay`)."""
        points = []
        for event in sorted(self.events("fault"), key=lambda e: _id_order(e["fault_id"])):
            trigger = event["trigger"]
            watched = trigger["task"] if "task" in trigger else (
                f"nth={trigger['nth']}" if "nth" in trigger else None)
            points.append((event["fault_id"], event["kind"], trigger["type"], watched,
                           trigger.get("step"), trigger.get("fraction"), trigger.get("point")))
        return points


def run_schedule(
    schedule: FaultSchedule,
    target: str | Target,
    config: TargetConfig | Mapping[str, Any] | None,
    workload: Workload,
    cluster: ChaosCluster,
    *,
    out: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
    seed: int | None = None,
    run_id: str | None = None,
    hold_timeout: float = 10.0,
    report_fractions: tuple[float, ...] = (0.5,),
    settle_timeout: float = 30.0,
    refill: RefillPolicy | None = None,
    replay_of: Sequence[Mapping[str, Any]] | None = None,
) -> RunRecord:
    """Run `workload` on `target` under `config` while `schedule` injects faults.

    `out` is a folder (the history goes to `out/history.jsonl`) or None (kept in
    memory only). `timeout` bounds the target's run; a run past it is "hung".
    `refill` says when a worker that left for good is replaced during the run (default:
    `RefillPolicy()`, after 1 s), as an autoscaler would. `replay_of`, the history of an
    earlier run of this schedule, makes this run keep to its order (`Lockstep`).
    """
    refill = RefillPolicy() if refill is None else refill
    runner = make_target(target) if isinstance(target, str) else target
    settings = config if isinstance(config, TargetConfig) else TargetConfig.from_dict(config or {})
    runner.check(settings)
    for _, fault in schedule.items():
        why = cluster.backend.unable(fault.kind)
        if why is not None:
            raise ClusterError(f"fault kind {fault.kind!r}: {why}.")
    run_id = run_id or uuid.uuid4().hex[:12]
    seed = schedule.seed if seed is None else seed
    # A step may be slow: the results after it wait for it that long without diverging.
    # The board of results is a folder, so only workers on this host keep to it.
    lockstep = None if replay_of is None else Lockstep(
        ReplayOrder.of(replay_of), patience=DEFAULT_PATIENCE + 2 * workload.step_seconds,
        shared_board=cluster.local_signals)
    plan = probe_plan(schedule, run_id, report_fractions=report_fractions,
                      hold_timeout=hold_timeout, topic=cluster.topic,
                      scheduler=cluster.scheduler_address, lockstep=lockstep)
    protocols: list[Any] = probed(workload.protocols(), plan)
    path = Path(out) / HISTORY_FILE if out is not None else None
    began = time.monotonic()
    try:
        snapshot = cluster.settle(timeout=settle_timeout,
                                  stealing=lockstep is None or lockstep.order.stealing)
    except BaseException:
        if lockstep is not None:
            lockstep.stop()  # its board folder goes with it
        raise
    phases = {"settle": time.monotonic() - began}

    history = HistoryWriter(path)
    recorded = runner.recorded_config(settings, snapshot.allowed_failures)
    history.emit("run-start", run_id=run_id, target=runner.name, config=recorded,
                 schedule=schedule.to_dict(), workload=workload.to_dict(), seed=seed,
                 versions=versions(), git_commit=git_commit(), workers=snapshot.worker_list(),
                 local_signals=cluster.local_signals, timeout=timeout,
                 refill_delay=refill.delay, cluster=cluster.backend.describe(),
                 lockstep=replay_of is not None, stealing=snapshot.stealing)
    started = time.time()
    coordinator: Coordinator | None = None

    def on_thaw(address: str, how: str, when: float) -> None:
        if coordinator is not None:
            coordinator.on_thaw(address, how, when)

    def before_thaw(address: str) -> None:  # the steals its original's stealer asked there
        if lockstep is not None:
            ask_steals(cluster.client, history, address,
                       lockstep.places.steals_before_thaw(address))

    inflictor = Inflictor(cluster.client, local_signals=cluster.local_signals, on_thaw=on_thaw,
                          before_thaw=before_thaw,
                          worker_tree=cluster.backend.worker_tree,
                          kill_scheduler=cluster.kill_scheduler,
                          preempt_hook=cluster.backend.preempt)
    fleet = FleetRefill(refill, cluster, history)
    coordinator = Coordinator(
        schedule=schedule, history=history, inflictor=inflictor,
        release_hold=cluster.probes.release_hold, find_holders=cluster.input_holders,
        live_workers=cluster.live_workers, started_at=started,
        on_worker_left=fleet.worker_left, lockstep=lockstep,
        moves=RetireMoves(cluster.client, history, inflictor.frozen,
                          lockstep.places.retire_recipients if lockstep else None),
    )
    scratch = Path(tempfile.mkdtemp(prefix=f"chaos-{run_id}-"))
    status: RunStatus = "crashed"
    error: str | None = None
    makespan = 0.0
    stuck = False
    cluster.attach(run_id, coordinator)
    try:
        coordinator.start()
        if lockstep is not None:
            lockstep.start(history)
        run = TargetRun(cluster.client, workload, protocols, settings, history, scratch,
                        lockstep=lockstep)
        stacks = path.with_name(STACKS_FILE) if path is not None else None
        status, error, makespan, stuck = _drive(runner, run, timeout, stacks)
    except Exception as crash:  # the harness failing is a verdict too
        status, error = "crashed", f"{type(crash).__name__}: {crash}"
        makespan = time.time() - started
    finally:
        phases["run"] = time.monotonic() - began - phases["settle"]
        fleet.close()
        if lockstep is not None:
            lockstep.stop()
        try:
            _wind_down(run_id, cluster, coordinator, inflictor)
        finally:
            history.emit("run-end", status=status, makespan=makespan, error=error)
            history.close()
            cluster.detach()
            shutil.rmtree(scratch, ignore_errors=True)
    if stuck:
        cluster.hard_reset()
    cluster.restore_capacity()
    phases["wrap-up"] = time.monotonic() - began - phases["settle"] - phases["run"]
    return RunRecord(run_id, runner.name, recorded, schedule, workload, seed, status, makespan,
                     error, history.events, path, phases)


def _id_order(fault_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in fault_id.lstrip("f").split("."))


def _wind_down(run_id: str, cluster: ChaosCluster, coordinator: Coordinator,
               inflictor: Inflictor) -> None:
    """Undo freezes, collect the probes' last reports, close the books, free held probes,
    and tell the stories of data a retirement lost."""
    inflictor.thaw_all()

    def frozen(address: str) -> bool:
        return address in inflictor.frozen()

    cluster.probes.flush(run_id, coordinator.flushed, exclude=frozen)
    coordinator.finish()
    cluster.probes.release_run(run_id, exclude=frozen)
    if coordinator.untold:
        record_stories(cluster.client, coordinator.untold, coordinator.history)


def _drive(target: Target, run: TargetRun, timeout: float, stacks: Path | None
           ) -> tuple[RunStatus, str | None, float, bool]:
    """Run the target on a thread of its own, so that a hang can be bounded. A hung
    run's threads' stacks go to `stacks`: where it waited when the bound passed."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            target.run(run)
            outcome["status"] = "completed"
        except BaseException as error:  # any end of the target is recorded
            outcome["status"] = "failed"
            outcome["error"] = f"{type(error).__name__}: {error}"[:2000]

    thread = threading.Thread(target=body, name="chaos-target", daemon=True)
    started = time.time()
    thread.start()
    thread.join(timeout)
    makespan = time.time() - started
    if not thread.is_alive():
        return outcome["status"], outcome.get("error"), makespan, False
    error = f"the run did not end within {timeout:g} s"
    if stacks is not None:
        stacks.write_text(describe_hang(run.client))
        error += f"; the threads' stacks then: {stacks.name}"
    target.abort()
    thread.join(min(10.0, max(2.0, timeout / 4)))
    return "hung", error, makespan, thread.is_alive()
