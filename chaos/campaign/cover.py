"""Coverage schedules: a fault of each kind aimed at each window of a task's life.

Drawn schedules hit the (kind x window) cells of `chaos.analysis.coverage` by chance: the
`ci` profile's 7 schedules left nearly three quarters of them unhit. These fixed schedules aim at
every cell instead, so that a gate-keeping campaign has struck each kind of fault in
each window at least once. Two faults a schedule, on tasks far apart in the run, keep
the count of runs down (3 schedules a kind for a 2-step chain).

Each window's aim (task T; the coverage module reads the window back from the history):

- running step k: mid-way through T's step k, at the worker running it;
- result computed, not fetched: as T's step 0 returns, at the worker returning it;
- input holder: as T's last step starts, at the worker holding its input and running it;
- replica holder: as T's step 0 starts, at another worker holding its (shared) input;
- between steps: at the run's start, at a random worker, before any step runs.

A window a configuration cannot have (a holder, with inline inputs) is no cell of it:
its fault is counted as not applicable there, as any drawn fault would be.
"""

from __future__ import annotations

from collections.abc import Sequence

from chaos.analysis.coverage import (
    IDLE_WINDOW,
    INPUT_WINDOW,
    REPLICA_WINDOW,
    RESULT_WINDOW,
    windows,
)
from chaos.spec import (
    SCHEDULER_KINDS,
    AtStep,
    AtTime,
    Fault,
    FaultKind,
    FaultSchedule,
    InputHeld,
    RandomWorker,
    ReplicaHolder,
    ResultReady,
    Role,
    RunningWorker,
)
from chaos.spec.triggers import TaskId, Trigger

FREEZE_FOR = 1.0  # seconds: a freeze long enough to be felt, short of any timeout


def aim(window: str, task: TaskId, n_steps: int) -> tuple[Trigger, Role]:
    """The trigger and target role that strike `window` of `task`'s life."""
    if window.startswith("running step "):
        return AtStep(step=int(window.rsplit(" ", 1)[1]), fraction=0.5, task=task), \
            RunningWorker()
    if window == RESULT_WINDOW:
        return ResultReady(step=0, task=task), RunningWorker()
    if window == INPUT_WINDOW:
        return InputHeld(step=n_steps - 1, task=task), RunningWorker()
    if window == REPLICA_WINDOW:
        return InputHeld(step=0, task=task), ReplicaHolder(prefer_other=True)
    if window == IDLE_WINDOW:
        return AtTime(0.0), RandomWorker(salt=len(str(task)))
    raise ValueError(f"no aim for window {window!r}")


def coverage_schedules(task_ids: Sequence[TaskId], n_steps: int,
                       kinds: Sequence[FaultKind]) -> list[FaultSchedule]:
    """For each worker kind, schedules that strike every window once, two at a time, at
    tasks far apart in the run (schedule p: the p-th task from the start and from the end).
    """
    ids = list(task_ids)
    aimed = windows(n_steps)
    schedules: list[FaultSchedule] = []
    for kind in kinds:
        if kind in SCHEDULER_KINDS:
            continue
        for p, pair in enumerate(aimed[i:i + 2] for i in range(0, len(aimed), 2)):
            tasks = (ids[p % len(ids)], ids[-1 - p % len(ids)])
            faults = []
            for window, task in zip(pair, tasks):  # noqa: B905 (a last window may be alone)
                trigger, target = aim(window, task, n_steps)
                faults.append(Fault(kind, trigger, target,
                                    freeze_for=FREEZE_FOR if kind == "freeze" else None))
            schedules.append(FaultSchedule(tuple(faults), seed=len(schedules)))
    return schedules
