"""Draw a campaign's fault schedules from `chaos.strategies.fault_schedules`, seeded.

Why Hypothesis rather than `FaultSchedule.generate(seed, n)`: the strategy is the one
the property tests use, so the campaign and the tests explore the same space, and
Hypothesis's generator front-loads the plainest schedules (its first draw is the
minimal one: one sigkill of the worker running the first task, at step 0) before it
spreads out. Why seeded: the same `seed` and Hypothesis version give the same list,
so a CI campaign runs the same schedules every time and a failure is a regression,
not bad luck. Every schedule is saved as JSON next to its run anyway, so a replay
never depends on drawing again.
"""

from __future__ import annotations

from collections.abc import Sequence

from chaos.errors import ScheduleError
from chaos.faults import FAULT_KINDS, FaultKind
from chaos.schedule import FaultSchedule
from chaos.triggers import TaskId

# A draw that keeps producing schedules already drawn (a tiny space) stops here.
MAX_ROUNDS = 20


def draw_schedules(
    count: int,
    *,
    seed: int,
    task_ids: Sequence[TaskId],
    n_steps: int,
    max_faults: int = 3,
    kinds: Sequence[FaultKind] = FAULT_KINDS,
) -> list[FaultSchedule]:
    """`count` distinct schedules of 1..`max_faults` faults, the same for the same seed.

    Needs the `chaos` extra (Hypothesis). Runs Hypothesis's generate phase only: no
    shrinking, no example database, no health checks (nothing is being tested here).
    """
    if count < 0 or max_faults < 1:
        raise ScheduleError(
            f"count={count}, max_faults={max_faults}: draw 0 or more schedules of at "
            "least 1 fault each."
        )
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seeded

    from chaos.strategies import fault_schedules

    strategy = fault_schedules(task_ids=task_ids, n_steps=n_steps, min_faults=1,
                               max_faults=max_faults, kinds=kinds)
    drawn: dict[str, FaultSchedule] = {}
    for round_ in range(MAX_ROUNDS):
        if len(drawn) >= count:
            break

        @seeded(seed * MAX_ROUNDS + round_)
        # Each round opens with the minimal schedule again: ask for a few extra.
        @settings(max_examples=count - len(drawn) + 2 * round_, database=None, deadline=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                  derandomize=False, report_multiple_bugs=False)
        @given(strategy)
        def collect(schedule: FaultSchedule) -> None:
            drawn.setdefault(schedule.to_json(indent=None), schedule)

        collect()
    return list(drawn.values())[:count]
