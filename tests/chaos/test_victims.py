"""Resolving a fault's role to a worker: the reason given when there is none to hit."""

from __future__ import annotations

from chaos.harness.inflict import Victim
from chaos.harness.observations import RunObservations
from chaos.harness.victims import choose_victim
from chaos.spec import Fault, InputHeld, RandomWorker, ReplicaHolder

LIVE = {"tcp://a": Victim("tcp://a", 1, None), "tcp://b": Victim("tcp://b", 2, None)}


def _seen() -> RunObservations:
    seen = RunObservations()
    seen.record("invoke", {"execution": "e1", "task_id": "t0", "index": [0], "step": 1,
                           "key": "k1", "worker": "tcp://b", "pid": 2})
    return seen


def test_an_input_held_only_by_a_worker_an_earlier_fault_took_says_so() -> None:
    # Nightly --seed 2468: two faults of one hit at a task's one holder; the first took it.
    fault = Fault("exit", InputHeld(step=1, task="t0"), ReplicaHolder())
    choice = choose_victim("f1", fault, {"execution": "e1", "worker": "tcp://b"}, seed=0,
                           seen=_seen(), live=LIVE, find_holders=lambda key: ["tcp://c"])
    assert choice.victim is None and choice.extra == {"holders": []}
    assert choice.reason == ("no live worker held the task's input (held only by tcp://c, "
                             "taken down by an earlier fault or gone)")


def test_an_input_no_worker_holds_is_inline_or_lost() -> None:
    fault = Fault("exit", InputHeld(step=1, task="t0"), RandomWorker(salt=1))
    choice = choose_victim("f1", fault, {"execution": "e1", "worker": "tcp://b"}, seed=0,
                           seen=_seen(), live=LIVE, find_holders=lambda key: [])
    assert choice.victim is None
    assert choice.reason == "no live worker held the task's input (inline input, or lost)"


def test_a_live_holder_is_hit() -> None:
    fault = Fault("exit", InputHeld(step=1, task="t0"), ReplicaHolder())
    choice = choose_victim("f1", fault, {"execution": "e1", "worker": "tcp://b"}, seed=0,
                           seen=_seen(), live=LIVE, find_holders=lambda key: ["tcp://c", "tcp://a"])
    assert choice.victim == LIVE["tcp://a"] and choice.extra == {"holders": ["tcp://a"]}
