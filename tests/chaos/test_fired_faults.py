"""The record of a run's fired faults (chaos.harness.fired_faults): one `fault` event
each, written once its effect is settled, however notices, thaws and the run's end race."""

from __future__ import annotations

from chaos import Fault, FaultSchedule, ResultReady, RunningWorker
from chaos.harness.fired_faults import Fired, FiredFaults
from chaos.harness.inflict import Landing
from chaos.harness.observations import RunObservations
from chaos.history import HistoryWriter

[(_, KILL)] = FaultSchedule((Fault("sigkill", ResultReady(step=0, task="t1"),
                                   RunningWorker()),), seed=0).items()
[(_, FREEZE)] = FaultSchedule((Fault("freeze", ResultReady(step=0, task="t1"), RunningWorker(),
                                     freeze_for=1.0),), seed=0).items()


def fired(fault_id: str, worker: str, fault: Fault = KILL) -> Fired:
    return Fired(fault_id, fault, {"type": "result-ready"}, worker, 7, fired_at=100.0)


def landing(worker: str, kind: str = "sigkill") -> Landing:
    return Landing(kind, worker, 7, "nanny", 100.0, 100.01)  # type: ignore[arg-type]


def faults(history: HistoryWriter) -> list[tuple]:
    return [(e["fault_id"], e["noticed_at"], e["landed_at"]) for e in history.events
            if e["type"] == "fault"]


def test_a_fault_is_written_once_its_workers_removal_is_seen_and_only_once():
    history, seen = HistoryWriter(), RunObservations()
    record = FiredFaults(history, seen, lockstep=None)
    kill, other = fired("f0", "tcp://a"), fired("f1", "tcp://b")
    record.add(kill)
    record.add(other)
    seen.record_removal("tcp://a", 100.2)
    record.settle_notices()
    assert faults(history) == []  # not landed yet: the removal may be another's
    record.landed(kill, landing("tcp://a"))
    record.landed(other, landing("tcp://b"))
    record.settle_notices()
    record.settle_notices()
    assert faults(history) == [("f0", 100.2, 100.01)]
    record.write_the_rest()  # the run ended: f1 never noticed
    record.write_the_rest()
    assert faults(history) == [("f0", 100.2, 100.01), ("f1", None, 100.01)]
    assert len(record) == 2


def test_a_freeze_is_written_as_it_thaws_and_a_later_removal_is_not_taken_for_it():
    history, seen = HistoryWriter(), RunObservations()
    record = FiredFaults(history, seen, lockstep=None)
    freeze = fired("f0", "tcp://a", FREEZE)
    record.add(freeze)
    record.landed(freeze, landing("tcp://a", "freeze"))
    assert record.thawed("tcp://b") == []
    assert record.thawed("tcp://a") == [freeze]
    assert record.thawed("tcp://a") == []  # ended once
    seen.record_removal("tcp://a", 105.0)
    record.settle_notices()
    record.write_the_rest()
    assert faults(history) == [("f0", None, 100.01)]


def test_a_freeze_noticed_before_it_thaws_is_not_written_again_as_it_thaws():
    """A freeze longer than the scheduler's patience: its worker was removed, then
    resumed (and the thaw, on the inflictor's timer, races the notice)."""
    history, seen = HistoryWriter(), RunObservations()
    record = FiredFaults(history, seen, lockstep=None)
    freeze = fired("f0", "tcp://a", FREEZE)
    record.add(freeze)
    record.landed(freeze, landing("tcp://a", "freeze"))
    seen.record_removal("tcp://a", 103.0)
    record.settle_notices()
    assert record.thawed("tcp://a") == [freeze]
    record.write_the_rest()
    assert faults(history) == [("f0", 103.0, 100.01)]


def test_a_fault_that_never_landed_is_written_with_why():
    history = HistoryWriter()
    record = FiredFaults(history, RunObservations(), lockstep=None)
    record.add(Fired("f0", KILL, {}, "tcp://a", 7, fired_at=100.0, extra={"reranked": []}))
    record.write_the_rest()
    [event] = [e for e in history.events if e["type"] == "fault"]
    assert event["landed_at"] is None and event["error"] == "the fault did not finish landing"
    assert event["reranked"] == [] and event["kind"] == "sigkill"
