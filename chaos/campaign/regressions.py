"""Fixed regression schedules: faults that once broke a run, replayed by every `ci`
campaign on top of the drawn ones, so a fixed bug stays fixed; and faults that make
sure each class of violation is *reachable*, so that a library with that bug cannot
pass by luck of the draw (tests/campaign/test_planted.py plants each bug).

Each is kept as the JSON its finder printed, with where it came from. They name tasks
of the default workload shape (8 tasks `t0`..`t7`, 2 steps), which every profile uses.
"""

from __future__ import annotations

from chaos.spec import AtStep, Fault, FaultSchedule, InputHeld, ReplicaHolder, RunningWorker

# issue 11: two retires and a sigterm removed all 3 workers of the LocalCluster and
# nothing replaced them; the library waited for workers until the run's time bound.
# Fixed by the harness's refill (chaos.harness.refill) and the library's bounded,
# announced wait for workers. Found by `--profile nightly --schedules 40 --seed 777`.
THREE_GRACEFUL_REMOVALS = FaultSchedule.from_json("""
{"version": 1, "seed": 5229, "faults": [
 {"id": "f0", "kind": "retire", "trigger": {"type": "input-held", "step": 1, "task": "t6"},
  "target": {"role": "replica-holder", "prefer_other": false}},
 {"id": "f1", "kind": "sigterm", "trigger": {"type": "input-held", "step": 1, "task": "t3"},
  "target": {"role": "replica-holder", "prefer_other": false}},
 {"id": "f2", "kind": "retire", "trigger": {"type": "result-ready", "step": 0, "nth": 7},
  "target": {"role": "random", "salt": 500}}]}
""")

# SIGKILL the worker holding t0's step-1 input (a holder other than the one running it
# when there is one): a library must resubmit a lost input (registry), or keep a second
# copy (max_task_replicas >= 2); one that does neither fails the task.
KILL_THE_HOLDER = FaultSchedule((Fault("sigkill", InputHeld(step=1, task="t0"),
                                       ReplicaHolder()),), seed=1)

# Freeze the worker running t0's last step for 1 s, past a step_timeout of 0.5 s: a
# second attempt starts elsewhere, and the first finishes late. The only schedule that
# makes a second result of one step arrive, which deduplication must drop.
FREEZE_PAST_TIMEOUT = FaultSchedule((Fault("freeze", AtStep(step=1, fraction=0.5, task="t0"),
                                           RunningWorker(), freeze_for=1.0),), seed=2)

REGRESSION_SCHEDULES: tuple[tuple[str, FaultSchedule], ...] = (
    ("issue-11-three-graceful-removals", THREE_GRACEFUL_REMOVALS),
    ("reach-lost-input", KILL_THE_HOLDER),
    ("reach-second-delivery", FREEZE_PAST_TIMEOUT),
)
