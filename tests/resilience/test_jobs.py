"""The job book's per-task count: a task is done (and its delivery bookkeeping dropped)
exactly when its last unfinished job finishes, so the run loop keeps nothing per task
after it. (A mutant that never called a task done kept that state for every task of
the run and survived every other test: exactly-once held, only memory grew.)"""

from __future__ import annotations

from resilience.delivery import DeliveryLedger
from resilience.jobs import Job, JobBook
from resilience.tasks import TaskSpec


def a_job(task: TaskSpec, index: tuple[int, ...], step: int = 1) -> Job:
    return Job(task, index, step, payload=None, lineage_attempts=(), started_at=0.0)


def test_a_task_is_done_when_its_last_unfinished_job_finishes():
    book = JobBook()
    task, other = TaskSpec("t", {}, position=0), TaskSpec(1, {}, position=1)
    first, second, alone = a_job(task, (0,)), a_job(task, (1,)), a_job(other, (0,))
    book.add([first, second, alone], "new")

    book.finish(first)
    assert book.take_done_tasks() == []  # one job of "t" is still open
    book.finish(second)
    book.finish(alone)
    assert sorted(book.take_done_tasks(), key=str) == [1, "t"]
    assert book.take_done_tasks() == []  # told once
    assert not book.jobs and book.take_pending() == []  # finished jobs are not submitted


def test_a_task_whose_next_steps_were_added_meanwhile_is_not_done():
    book = JobBook()
    task = TaskSpec("t", {}, position=0)
    step0 = a_job(task, (), step=0)
    book.add([step0], "new")

    book.add([a_job(task, (0,)), a_job(task, (1,))], "new")  # step 0's outputs
    book.finish(step0)

    assert book.take_done_tasks() == []


def test_the_delivery_ledger_drops_a_done_tasks_outputs():
    # The other half of that bookkeeping: the outputs claimed for a done task are
    # forgotten, so the ledger holds the running tasks' outputs, however long the run.
    ledger = DeliveryLedger()
    assert ledger.claim("t", (0,)) and not ledger.claim("t", (0,))  # a second is refused
    assert ledger.claim(1, (0,)) and ledger.claim(1, (1,))
    ledger.close(["t"])
    assert len(ledger) == 2
    ledger.close([1])
    assert len(ledger) == 0
