"""Results in turn: a lockstep replay's steps finish in the order its original's did.

The original's order is the plan's `result_order`: (task_id, index, step, nth) of each
result, in the order they were computed. A step that reaches its result point claims
its ordinal among equal results (a second attempt of a step is nth=2), waits until every
result before it in the order is done, and marks itself done. The board is a folder on
this host's disk, shared by the worker processes: a claim is an exclusive create, a done
mark a file, and a wait a poll of a few milliseconds, so keeping to the order costs no
round trip to the harness (holding a worker for one would change what it runs next).

A step the original's kill cut short (started on the victim, never done) has no place
in the order: at its result point it waits for that kill's entry (`cut_short`), and dies
with its worker as it did, rather than finish because this replay's worker got there
a little sooner (`chaos.harness.death_race`). Nobody waits for its result.

A result after which its worker started a step the client had submitted before, in the
original, waits until that step has reached its worker (`queued`; the client marks each
submit's key on the board: `chaos.harness.queue_order`), so that the worker has it to
start next.

A result that never comes (the replay left its original) stops nobody for longer than
`patience` seconds: the waiter marks it done itself, and reports that it did. A fault's
entry (the harness marks it when the scheduler noticed the fault) is waited for up to
FAULT_PATIENCE: a graceful shutdown may take seconds to land.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ResultKey = tuple[Any, tuple[int, ...], int]  # (task_id, index, step)
# (task_id, index, step, nth) of each step a kill cut short -> that kill's `fault_entry`
CutShort = Sequence[tuple[tuple[Any, ...], tuple[Any, ...]]]
# (task_id, index, step, nth) of a result -> ((task_id, index, step), nth) of a submission
Queued = Sequence[tuple[tuple[Any, ...], tuple[Any, ...]]]
_POLL = 0.001  # seconds between looks at the board
FAULT_PATIENCE = 10.0
# A result marked done still has to travel: from the task's thread to its worker's event
# loop, then on a stream batched every 2 ms to the scheduler, and on to the client. The
# result after it waits until the client took it (the harness marks it "arrived") for up
# to ARRIVAL_WAIT: a fixed delay alone let results overtake each other on a loaded host
# (CI; 0.05 s still did, with both cores busy). A result the client never takes (a late
# duplicate, one lost) is waited for that long, then IN_FLIGHT (two batch intervals)
# after it was done.
ARRIVAL_WAIT = 0.2
IN_FLIGHT = 0.004


def take_turn(board: str, order: Sequence[tuple[Any, ...]], key: ResultKey,
              patience: float, cut_short: CutShort = (),
              close_behind: Sequence[tuple[Any, ...]] = (), queued: Queued = (),
              has_task: Callable[[str], bool] | None = None,
              closed_short: CutShort = (), closing: Callable[[], bool] | None = None,
              behind_taken: Sequence[tuple[Any, ...]] = (), dask_key: str = "",
              scheduler_has: Callable[[str], bool] | None = None,
              after_shutdown: CutShort = (), stopped: Callable[[], bool] | None = None
              ) -> list[list[Any]]:
    """Wait for this result's turn on `board`; the earlier results given up on. A result
    in `close_behind` waits for the one before it to be on its way, not taken; in
    `behind_taken` too, until the scheduler holds it (`scheduler_has(its dask_key)`, the
    key each result leaves on the board); one in `queued`, for its submissions to reach
    this worker (`has_task(key)`); one in `closed_short`, for a nanny's close to reach
    this worker (`closing()`); one in `after_shutdown`, for this worker to stop running
    (`stopped()`) as a graceful shutdown reaches it."""
    try:
        folder = Path(board)
        nth = _claim(folder, key)
        entry = (key[0], tuple(key[1]), key[2], nth)
        missing = _wait_queued(folder, entry, queued, has_task, patience)
        missing += _wait_worker(folder, entry, closed_short, closing)
        missing += _wait_worker(folder, entry, after_shutdown, stopped)
        held = None if entry not in {_entry(e) for e in behind_taken} else scheduler_has
        return _take_turn(folder, order, entry, patience, cut_short, close_behind,
                          dask_key, held) + missing
    except FileNotFoundError:  # the replay ended and took its board: no order to keep
        return []


def mark_submitted(board: str, submission: tuple[Any, ...], key: str) -> None:
    """Mark that the client submitted `submission` ((task_id, index, step), nth) as `key`
    (the harness does, as it records the submit)."""
    (task_id, index, step), nth = submission
    with contextlib.suppress(FileNotFoundError):  # the replay ended and took its board
        _mark(Path(board), (task_id, index, step, nth), "submitted").write_text(key)


def _wait_queued(folder: Path, entry: tuple[Any, ...], queued: Queued,
                 has_task: Callable[[str], bool] | None, patience: float) -> list[list[Any]]:
    """Wait until the submissions queued behind `entry` are on this worker, for up to
    `patience` seconds; those that never came."""
    waiting = [submission for result, submission in queued if _entry(result) == entry]
    if not waiting or has_task is None:
        return []
    deadline = time.monotonic() + patience
    while True:
        waiting = [(step, nth) for step, nth in waiting
                   if not has_task(_submitted_key(folder, (*step, nth)))]
        if not waiting or not folder.exists():  # (a board taken away: the replay ended)
            return []
        if time.monotonic() >= deadline:
            return [["queued", step[0], list(step[1]), step[2], nth] for step, nth in waiting]
        time.sleep(_POLL)


def _wait_worker(folder: Path, entry: tuple[Any, ...], shutdowns: CutShort,
                 reached: Callable[[], bool] | None) -> list[list[Any]]:
    """Wait until a shutdown that reached this worker as `entry`'s step ended in the
    original (`shutdowns`: a nanny's close that cut it short, or a graceful shutdown it
    ended under) has reached it here (`reached()`), or has settled (it struck elsewhere
    here, or was skipped), for up to FAULT_PATIENCE; the shutdown, if it never came."""
    faults = [tuple(fault) for result, fault in shutdowns if _entry(result) == entry]
    if not faults or reached is None:
        return []
    deadline = time.monotonic() + FAULT_PATIENCE
    while folder.exists() and not reached() and not _mark(folder, faults[0], "done").exists():
        if time.monotonic() >= deadline:
            return [[faults[0][0], [], None, faults[0][3]]]
        time.sleep(_POLL)
    return []


def _submitted_key(folder: Path, submission: tuple[Any, ...]) -> str:
    try:
        return _mark(folder, submission, "submitted").read_text()
    except OSError:  # not submitted yet
        return ""


def _take_turn(folder: Path, order: Sequence[tuple[Any, ...]], entry: tuple[Any, ...],
               patience: float, cut_short: CutShort, close_behind: Sequence[tuple[Any, ...]],
               dask_key: str, scheduler_has: Callable[[str], bool] | None) -> list[list[Any]]:
    entries = [_entry(e) for e in order]
    killer = {_entry(e): tuple(fault) for e, fault in cut_short}
    # A result the original never had waits for nobody, but the kill that cut it short.
    waiting = (entries[:entries.index(entry)] if entry in entries
               else [killer[entry]] if entry in killer else [])
    before = list(waiting)
    started = time.monotonic()
    given_up: list[list[Any]] = []
    while waiting:
        if not folder.exists():  # the replay ended and took its board: no order to keep
            return given_up  # (waiting out a fault's patience held the next run's worker)
        waiting = [e for e in waiting if not _mark(folder, e, "done").exists()]
        bound = FAULT_PATIENCE if any(_is_fault(e) for e in waiting) else patience
        if waiting and time.monotonic() - started >= bound:
            for missing in waiting:
                _done(folder, missing)
                given_up.append([missing[0], list(missing[1]), missing[2], missing[3]])
            break
        if waiting:
            time.sleep(_POLL)
    close = entry in {_entry(e) for e in close_behind}
    if before and (close or not _arrived(folder, before[-1])):  # let it reach the client
        last = max(_done_at(folder, e) for e in before)
        time.sleep(max(0.0, last + IN_FLIGHT - time.time()))
        if scheduler_has is not None:  # (only a result close behind one the client took)
            _wait_scheduled(folder, before[-1], scheduler_has)
    _done(folder, entry, dask_key)
    return given_up


def _wait_scheduled(folder: Path, entry: tuple[Any, ...],
                    scheduler_has: Callable[[str], bool]) -> None:
    """Wait until the scheduler holds `entry`'s result, or the client took it (and may
    have let it go), for up to ARRIVAL_WAIT after it was done. The client takes results
    in the order the scheduler had them, and a busy worker's event loop can send a
    result 10 ms after its thread finished it: a result done 4 ms after it, on another
    worker, overtook it (nightly --seed 9753's `s009`, about 1 replay in 10). A fault's
    entry, or a result whose key was not written, is not waited for."""
    key = _done_key(folder, entry)
    if _is_fault(entry) or not key:
        return
    deadline = _done_at(folder, entry) + ARRIVAL_WAIT
    while (time.time() < deadline and not _mark(folder, entry, "arrived").exists()
           and not scheduler_has(key)):
        time.sleep(_POLL)


def _entry(entry: Sequence[Any]) -> tuple[Any, ...]:
    """(task_id, index, step, nth) as a hashable tuple (a plan's may hold lists)."""
    return (entry[0], tuple(entry[1]), entry[2], entry[3])


def _arrived(folder: Path, entry: tuple[Any, ...]) -> bool:
    """Whether the client took `entry`'s result, waiting up to ARRIVAL_WAIT after it was
    done. A fault's entry never arrives anywhere."""
    if _is_fault(entry):
        return False
    deadline = _done_at(folder, entry) + ARRIVAL_WAIT
    while not _mark(folder, entry, "arrived").exists():
        if time.time() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def wait_done(board: str, entry: tuple[Any, ...], patience: float) -> bool:
    """Wait until `entry` is done on `board`, and on its way (IN_FLIGHT after), for up to
    `patience` seconds; whether it was done (a board already taken away: yes)."""
    folder = Path(board)
    deadline = time.monotonic() + patience
    while folder.exists() and not _mark(folder, entry, "done").exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    if folder.exists():
        time.sleep(max(0.0, _done_at(folder, entry) + IN_FLIGHT - time.time()))
    return True


def marked_done(board: str, entry: tuple[Any, ...]) -> bool:
    """Whether `entry` is done on `board` (a board taken away: yes, nothing to wait for)."""
    folder = Path(board)
    return _mark(folder, _entry(entry), "done").exists() or not folder.exists()


def fault_entry(fault_id: str) -> tuple[Any, ...]:
    """A fault's place in the order: the results after it wait until it settled."""
    return (f"fault {fault_id}", (), None, 1)


def mark_done(board: str, entry: tuple[Any, ...]) -> None:
    """Mark `entry` done on the board (the harness does, for a fault that settled)."""
    with contextlib.suppress(FileNotFoundError):  # the replay ended and took its board
        _done(Path(board), entry)


def mark_arrived(board: str, entry: tuple[Any, ...]) -> None:
    """Mark that the client took `entry`'s result (the harness does, as it records it)."""
    with contextlib.suppress(FileNotFoundError):  # the replay ended and took its board
        _mark(Path(board), entry, "arrived").touch()


def _done(folder: Path, entry: tuple[Any, ...], dask_key: str = "") -> None:
    # The time is written, not left to the file's mtime: that may lag by a clock tick.
    _mark(folder, entry, "done").write_text(f"{time.time()!r} {dask_key}")


def _done_at(folder: Path, entry: tuple[Any, ...]) -> float:
    try:
        return float(_mark(folder, entry, "done").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # created, not yet written: done about now
        return time.time()


def _done_key(folder: Path, entry: tuple[Any, ...]) -> str:
    """The Dask key of the result done as `entry`, or "" (a fault's, or not written)."""
    try:
        return " ".join(_mark(folder, entry, "done").read_text().split()[1:])
    except OSError:
        return ""


def _is_fault(entry: tuple[Any, ...]) -> bool:
    return isinstance(entry[0], str) and entry[0].startswith("fault ") and entry[2] is None


def _claim(folder: Path, key: ResultKey) -> int:
    """This result's ordinal among results of the same step and lineage, board-wide."""
    nth = 1
    while True:
        try:
            os.close(os.open(_mark(folder, (*key, nth), "claim"), os.O_CREAT | os.O_EXCL))
            return nth
        except FileExistsError:
            nth += 1


def _mark(folder: Path, entry: tuple[Any, ...], kind: str) -> Path:
    task_id, index, step, nth = entry
    name = hashlib.sha1(repr((task_id, tuple(index), step)).encode()).hexdigest()[:16]
    return folder / f"{name}.{nth}.{kind}"
