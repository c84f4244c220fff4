"""Whether the "disk" task registry scales to a run of a million tasks.

    python benchmarks/registry_scale.py [--tasks 1000000] [--outputs 5000] [--quick]

No Dask: the registry (`SQLiteRegistry`, opened by `open_durable_run`) is driven by the
calls the run loop makes, with the library's own classes, on tasks drawn lazily from a
generator through `task_specs(..., check_unique=False)`. Everything lives in a temporary
directory, removed at the end. Each figure is measured once (a 1M-task phase is long
enough to average out a noisy machine); the OS file cache is warm on every resume.

Targets, each printed with PASS/FAIL (the exit code is 0 either way: this measures):
  1. insert      `update(add=..., progress=admitted_progress(...))` in batches of
                 max_in_flight (1024) and of 10,000: >= 100,000 records/s. Also shown,
                 not judged: a 1 KB payload per record instead of INITIAL_INPUT (the
                 cost of step inputs), in MB/s, since bytes written bound it.
  2. memory      the bookkeeping of a whole 2-protocol run, max_in_flight at a time
                 (admit, step 0 -> step 1, deliver): RSS < 200 MB, and flat: < 5 MB of
                 growth from 10% to 100% of the tasks (SQLite's page cache alone may take
                 2 MB), sampled at 0, 10%, 25%, 50% and 100% of the tasks.
  3. resume      `open_durable_run` with a fresh generator (it re-reads the admitted task
                 ids, runs quick_check, verifies the signed metadata) plus the first page
                 of `unfinished(1024)`: <= 10 s, (a) for the registry of that run left
                 with its last batch in flight, (b) for a registry of 1M unfinished
                 step-0 records; and (b) paged through to the end.
  4. lazy        the generator is never read ahead of admission, and a resume draws
                 exactly the admitted tasks from a longer generator.
Also shown: the lifecycle's tasks/s, and the output folder (`OutputSink`, an fsync per
file) in outputs/s, measured on --outputs tasks only.

--quick runs 100,000 tasks and 1,000 outputs: a smoke run of about half a minute.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resilience import Output
from resilience.config import ResilienceConfig
from resilience.durable import DurableRun, open_durable_run
from resilience.registry import INITIAL_INPUT, Delivery, StepRecord
from resilience.sqlite_registry import SQLiteRegistry
from resilience.tasks import TaskSpec, task_specs

MAX_IN_FLIGHT = ResilienceConfig().max_in_flight  # the run loop's default batch (1024)
BIG_BATCH = 10_000
CHILD_PAYLOAD = b"step-0 output..."  # a small step-1 input (16 bytes)
KB_PAYLOAD = os.urandom(1024)
KB_LABEL = "1 KB bytes"
INSERT_GOAL = 100_000  # records/s
RSS_GOAL = 200.0  # MB
FLAT_GOAL = 5.0  # MB of RSS growth from 10% to 100% of the tasks (SQLite's cache: 2 MB)
RESUME_GOAL = 10.0  # s


def protocol_0(**kwargs: Any) -> list[bytes]:
    """Stands for the run's first protocol: only its fingerprint is used."""
    return [CHILD_PAYLOAD]


def protocol_1(payload: bytes, **kwargs: Any) -> list[bytes]:
    return [payload]


PROTOCOLS: list[Callable[..., Any]] = [protocol_0, protocol_1]


# -- tasks -------------------------------------------------------------------------


@dataclass
class TaskSource:
    """A generator of n task dicts that counts how many were drawn from it."""

    n: int
    drawn: int = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(self.n):
            self.drawn += 1
            yield {"task_id": i, "seed": i, "name": f"decoy-{i}"}


def specs(source: TaskSource) -> Iterator[TaskSpec]:
    return task_specs(iter(source), check_unique=False)


# -- what the run loop does to the registry ------------------------------------------


def step0(task: TaskSpec, now: float, payload: Any = INITIAL_INPUT) -> StepRecord:
    return StepRecord(task.task_id, (), 0, payload, task.kwargs, attempts=1,
                      options={"retries": 0}, started_at=now)


def step1(task: TaskSpec, now: float) -> StepRecord:
    return StepRecord(task.task_id, (0,), 1, CHILD_PAYLOAD, task.kwargs, attempts=1,
                      options={"retries": 0}, lineage_attempts=(1,), started_at=now)


def admit(run: DurableRun, tasks: Iterator[TaskSpec], room: int) -> list[TaskSpec]:
    """`_admit_tasks` (with `_drop_repeated_ids`), then `_submit_step`'s set_attempts
    (empty for first attempts, as in the run loop)."""
    batch = list(itertools.islice(tasks, room))
    if not batch:
        return batch
    known = run.registry.known_task_ids([task.task_id for task in batch])
    assert not known, "a task id repeats"
    now = time.time()
    run.registry.update(add=[step0(task, now) for task in batch],
                        progress=run.admitted_progress(batch))
    run.registry.set_attempts([])
    return batch


def advance(registry: SQLiteRegistry, batch: list[TaskSpec]) -> None:
    """`_process` for step 0: each task's child record in, its parent out; then the
    children's submission."""
    now = time.time()
    registry.update(add=[step1(task, now) for task in batch],
                    remove=[(task.task_id, ()) for task in batch])
    registry.set_attempts([])


def deliver(run: DurableRun, batch: list[TaskSpec]) -> None:
    """`_process` for the last step (`_claim` asks the ledger), then `_commit_delivery`."""
    flags = run.registry.is_delivered([(task.task_id, (0, 0)) for task in batch])
    assert not any(flags), "an output was delivered twice"
    progress = None
    if run.sink is not None:
        now = time.time()
        entries = run.sink.write([(Output(task.task_id, (0, 0), CHILD_PAYLOAD, 1, (1, 1)),
                                   task.kwargs, now) for task in batch])
        progress = run.sink.committed_progress()
    else:
        entries = [Delivery(task.task_id, (0, 0), 1) for task in batch]
    run.registry.update(remove=[(task.task_id, (0,)) for task in batch], delivered=entries,
                        progress=progress)


# -- measurements --------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def disk_mb(path: Path) -> float:
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


@dataclass
class Lifecycle:
    seconds: float
    samples: list[tuple[int, float, float]]  # (tasks admitted, VmRSS MB, ru_maxrss MB)
    read_ahead: int  # most tasks ever drawn from the generator beyond those admitted
    timers: dict[str, float] = field(default_factory=dict)


def lifecycle(path: Path, n: int, output: Path | None = None,
              leave_in_flight: bool = False) -> Lifecycle:
    """The bookkeeping of a whole 2-protocol run, max_in_flight tasks at a time. With
    `leave_in_flight` the last batch stays unfinished (half of it at step 0, half at
    step 1), as when the client dies near the end."""
    source = TaskSource(n)
    tasks = specs(source)
    run = open_durable_run(path, None, output, PROTOCOLS, tasks, start_afresh=False)
    marks = sorted({n // 10, n // 4, n // 2})
    samples = [(0, rss_mb(), max_rss_mb())]
    timers: dict[str, float] = defaultdict(float)
    tail = MAX_IN_FLIGHT if leave_in_flight else 0
    read_ahead = 0
    started = time.perf_counter()
    try:
        while True:
            room = min(MAX_IN_FLIGHT, n - tail - run.admitted) or MAX_IN_FLIGHT
            t0 = time.perf_counter()
            batch = admit(run, tasks, room)
            read_ahead = max(read_ahead, source.drawn - run.admitted)
            t1 = time.perf_counter()
            if not batch:
                break
            if tail and run.admitted == n:  # the last batch: left in flight
                advance(run.registry, batch[: len(batch) // 2])
                break
            advance(run.registry, batch)
            t2 = time.perf_counter()
            deliver(run, batch)
            t3 = time.perf_counter()
            timers["admit"] += t1 - t0
            timers["advance"] += t2 - t1
            timers["deliver"] += t3 - t2
            while marks and run.admitted >= marks[0]:
                marks.pop(0)
                samples.append((run.admitted, rss_mb(), max_rss_mb()))
        seconds = time.perf_counter() - started
        samples.append((run.admitted, rss_mb(), max_rss_mb()))
    finally:
        run.registry.close()
    return Lifecycle(seconds, samples, read_ahead, dict(timers))


def insert(path: Path, n: int, batch: int, payload: Any = INITIAL_INPUT
           ) -> tuple[float, float]:
    """Admit n tasks in batches; returns (records/s of `update` alone, records/s of the
    whole admission: generator, task_specs, known_task_ids, records, update)."""
    tasks = specs(TaskSource(n))
    run = open_durable_run(path, None, None, PROTOCOLS, tasks, start_afresh=False)
    in_update = 0.0
    started = time.perf_counter()
    try:
        while chunk := list(itertools.islice(tasks, batch)):
            run.registry.known_task_ids([task.task_id for task in chunk])
            now = time.time()
            records = [step0(task, now, payload) for task in chunk]
            progress = run.admitted_progress(chunk)
            t0 = time.perf_counter()
            run.registry.update(add=records, progress=progress)
            in_update += time.perf_counter() - t0
        total = time.perf_counter() - started
    finally:
        run.registry.close()
    return n / in_update, n / total


@dataclass
class Resume:
    open_s: float
    first_page_s: float
    first_page: int
    drawn_exactly: bool
    all_pages_s: float = 0.0
    unfinished: int = 0


def resume(path: Path, n: int, page_all: bool = False) -> Resume:
    """`open_durable_run` with a fresh generator (twice as long: more tasks may follow),
    then the first page of unfinished steps, and with `page_all` the rest of them."""
    source = TaskSource(2 * n)
    t0 = time.perf_counter()
    run = open_durable_run(path, None, None, PROTOCOLS, specs(source), start_afresh=False)
    t1 = time.perf_counter()
    try:
        assert run.resumed and run.admitted == n, (run.resumed, run.admitted)
        page = run.unfinished(MAX_IN_FLIGHT)
        t2 = time.perf_counter()
        result = Resume(t1 - t0, t2 - t1, len(page), source.drawn == run.admitted)
        if page_all:
            count = len(page)
            while page := run.unfinished(MAX_IN_FLIGHT):
                count += len(page)
            result.all_pages_s = time.perf_counter() - t2
            result.unfinished = count
    finally:
        run.registry.close()
    return result


def resume_parts(path: Path, n: int) -> dict[str, float]:
    """Where a resume's time goes, each part alone, with the library's own pieces."""
    from resilience.fingerprint import TaskIdDigest

    parts = {}
    t0 = time.perf_counter()
    registry = SQLiteRegistry(path)  # application_id, quick_check, signed metadata
    parts["open + quick_check"] = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        registry.counts()
        parts["counts()"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        registry.last_seq()
        parts["last_seq()"] = time.perf_counter() - t0
    finally:
        registry.close()
    t0 = time.perf_counter()
    digest = TaskIdDigest()
    for task in itertools.islice(specs(TaskSource(n)), n):
        digest.add(task.position, task.task_id)
    parts["task ids re-read + digest"] = time.perf_counter() - t0
    return parts


# -- report --------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL  <<<"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--outputs", type=int, default=None, help="default 5,000")
    parser.add_argument("--quick", action="store_true", help="100,000 tasks, 1,000 outputs")
    args = parser.parse_args()
    n = args.tasks or (100_000 if args.quick else 1_000_000)
    n_outputs = args.outputs or (1_000 if args.quick else 5_000)
    assert n > 2 * MAX_IN_FLIGHT, "--tasks must exceed 2 x max_in_flight"
    started = time.perf_counter()
    print(f"{n:,} tasks, max_in_flight={MAX_IN_FLIGHT}, SQLite registry; "
          f"RSS after imports {rss_mb():.1f} MB")
    rows: list[tuple[str, str, str, str]] = []

    with tempfile.TemporaryDirectory(prefix="registry_scale-") as tmp:
        folder = Path(tmp)

        # The lifecycle first, so that ru_maxrss is the bookkeeping's and nothing else's.
        life_db = folder / "lifecycle.db"
        life = lifecycle(life_db, n, leave_in_flight=True)
        print(f"\nlifecycle: {n:,} tasks in {life.seconds:.1f} s ({n / life.seconds:,.0f} "
              f"tasks/s; admit {life.timers['admit']:.1f} s, step 0->1 "
              f"{life.timers['advance']:.1f} s, deliver {life.timers['deliver']:.1f} s); "
              f"registry {disk_mb(life_db):.0f} MB on disk")
        print(f"  {'tasks admitted':>15}{'VmRSS MB':>11}{'ru_maxrss MB':>14}")
        for admitted, rss, max_rss in life.samples:
            print(f"  {admitted:>15,}{rss:>11.1f}{max_rss:>14.1f}")
        peak = max(max(rss, max_rss) for _, rss, max_rss in life.samples)
        (first, rss_first, _), (last, rss_last, _) = life.samples[1], life.samples[-1]
        growth = rss_last - rss_first

        resumed = resume(life_db, n)
        parts = resume_parts(life_db, n)
        print(f"\nresume (a), {resumed.first_page} steps left in flight: open "
              f"{resumed.open_s:.2f} s + first page {resumed.first_page_s:.3f} s; parts alone: "
              + ", ".join(f"{name} {s:.2f} s" for name, s in parts.items()))
        life_db.unlink()

        print(f"\ninsert: {n:,} step-0 records")
        print(f"  {'batch':>7}  {'payload':<14}{'update rec/s':>14}{'admission rec/s':>17}"
              f"{'on disk MB':>12}")
        inserts: dict[tuple[int, str], float] = {}
        for batch, payload, label in [(MAX_IN_FLIGHT, INITIAL_INPUT, "INITIAL_INPUT"),
                                      (BIG_BATCH, INITIAL_INPUT, "INITIAL_INPUT"),
                                      (MAX_IN_FLIGHT, KB_PAYLOAD, KB_LABEL)]:
            db = folder / f"insert-{batch}-{len(inserts)}.db"
            rate, admission = insert(db, n, batch, payload)
            inserts[batch, label] = rate
            print(f"  {batch:>7,}  {label:<14}{rate:>14,.0f}{admission:>17,.0f}"
                  f"{disk_mb(db):>12.0f}")
            if (batch, label) != (BIG_BATCH, "INITIAL_INPUT"):
                db.unlink()

        # The registry of 10,000-record batches: n unfinished step-0 records, none done.
        worst_db = folder / f"insert-{BIG_BATCH}-1.db"
        worst = resume(worst_db, n, page_all=True)
        print(f"\nresume (b), {worst.unfinished:,} unfinished steps: open {worst.open_s:.2f} s"
              f" + first page {worst.first_page_s:.3f} s; all pages {worst.all_pages_s:.1f} s")
        worst_db.unlink()

        sink_db = folder / "sink.db"
        out = lifecycle(sink_db, n_outputs, output=folder / "outputs")
        print(f"\noutput folder: {n_outputs:,} outputs through OutputSink in "
              f"{out.timers['deliver']:.1f} s of delivery ({out.seconds:.1f} s in all)")

    for (batch, label), rate in inserts.items():
        if label == KB_LABEL:  # bound by bytes written, not by records: shown, not judged
            rows.append((f"   insert, batch {batch:,}, {label} (info)",
                         f"{rate * len(KB_PAYLOAD) / 1e6:,.0f} MB/s", "-", "-"))
            continue
        rows.append((f"1. insert, batch {batch:,}, {label}", f"{rate:,.0f} rec/s",
                     f">= {INSERT_GOAL:,} rec/s", verdict(rate >= INSERT_GOAL)))
    rows.append((f"2. RSS, peak over {n:,}-task lifecycle", f"{peak:.1f} MB",
                 f"< {RSS_GOAL:.0f} MB", verdict(peak < RSS_GOAL)))
    rows.append((f"2. RSS growth, {first:,} -> {last:,} tasks", f"{growth:+.2f} MB",
                 f"< {FLAT_GOAL:g} MB", verdict(growth < FLAT_GOAL)))
    for label, seconds in [("3. resume (a): open + first page", resumed.open_s
                            + resumed.first_page_s),
                           ("3. resume (b): open + first page", worst.open_s
                            + worst.first_page_s),
                           (f"3. resume (b): page all {worst.unfinished:,}",
                            worst.all_pages_s)]:
        rows.append((label, f"{seconds:.2f} s", f"<= {RESUME_GOAL:g} s",
                     verdict(seconds <= RESUME_GOAL)))
    rows.append(("4. tasks drawn ahead of admission", f"{life.read_ahead}", "0",
                 verdict(life.read_ahead == 0)))
    rows.append(("4. resume draws exactly the admitted",
                 "yes" if resumed.drawn_exactly and worst.drawn_exactly else "no", "yes",
                 verdict(resumed.drawn_exactly and worst.drawn_exactly)))
    rows.append(("   lifecycle throughput (info)", f"{n / life.seconds:,.0f} tasks/s", "-", "-"))
    rows.append(("   output folder (info)", f"{n_outputs / out.timers['deliver']:,.0f} out/s",
                 "-", "-"))

    width = max(len(row[0]) for row in rows)
    print(f"\n{'target':<{width}}  {'measured':>16}  {'goal':>16}  verdict")
    for name, measured, goal, mark in rows:
        print(f"{name:<{width}}  {measured:>16}  {goal:>16}  {mark}")
    failed = sum(row[3].startswith("FAIL") for row in rows)
    print(f"\n{failed} of {sum(row[3] != '-' for row in rows)} targets FAILED"
          if failed else "\nall targets PASS", f"(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
