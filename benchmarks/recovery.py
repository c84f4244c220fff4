"""Kill -> restart: how fast a SIGKILLed worker's step starts again elsewhere, against raw Dask.

    python benchmarks/recovery.py [--repeats 10] [--seconds 1.5] [--kill-at 0.6] [--input-kb 100]

One LocalCluster (3 nanny workers x 1 thread). Each repetition runs 2 tasks of
`--seconds` (sleep); `--kill-at` seconds after task 0 started, its worker is SIGKILLed
(its nanny brings a fresh one back in ~0.4 s). The protocol appends one line per start
(task, pid, time) to a log; the restart is the first start of task 0 after the kill, and
kill -> restart is read from that log, not from anyone's notion of when it happened.

Variants, interleaved over the repetitions so that drift on a shared machine hits all:
  raw-dask      client.submit(step, input_inline, ...): Dask reschedules it by itself
  memory+0      ResilientCluster(task_registry="memory", max_task_replicas=0)
  disk+2        ResilientCluster(task_registry="disk", max_task_replicas=2), AMM guarded

It prints p50 and p99 (of the repetitions) per variant, and each as a ratio to raw
Dask's in the same run. It asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
from distributed import Client, LocalCluster, wait

from resilience import ResilientCluster

N_WORKERS = 3
VICTIM_TASK = 0
LOG_WAIT = 30.0  # seconds to wait for the victim's first start before giving up


def timed_step(payload: Any, *, task_id: int, log: str, seconds: float, **_: Any) -> int:
    """The protocol: one line per start (O_APPEND, one write: lines never interleave)."""
    line = f"{task_id} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    time.sleep(seconds)
    return task_id


@dataclass(frozen=True)
class Start:
    task_id: int
    pid: int
    at: float


def read_log(log: Path) -> list[Start]:
    if not log.exists():
        return []
    starts = []
    for line in log.read_text().splitlines():
        task_id, pid, at = line.split()
        starts.append(Start(int(task_id), int(pid), float(at)))
    return starts


class Killer:
    """SIGKILLs the worker running the victim task, `kill_at` seconds after it started."""

    def __init__(self, log: Path, kill_at: float) -> None:
        self._log = log
        self._kill_at = kill_at
        self.killed_at: float | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + LOG_WAIT
        while time.monotonic() < deadline:
            first = [s for s in read_log(self._log) if s.task_id == VICTIM_TASK]
            if first:
                start = first[0]
                time.sleep(max(0.0, start.at + self._kill_at - time.time()))
                self.killed_at = time.time()
                os.kill(start.pid, signal.SIGKILL)
                return
            time.sleep(0.002)
        self.error = "the victim task never started"

    def join(self) -> None:
        self._thread.join(LOG_WAIT + 5)


def restart_after(log: Path, killed_at: float) -> float | None:
    later = [s.at for s in read_log(log) if s.task_id == VICTIM_TASK and s.at > killed_at]
    return min(later) - killed_at if later else None


Variant = Callable[[Client, bytes, str, float], None]


def raw_dask(client: Client, payload: bytes, log: str, seconds: float) -> None:
    futures = [client.submit(timed_step, payload, task_id=i, log=log, seconds=seconds,
                             pure=False) for i in range(2)]
    wait(futures, timeout=120)
    assert [f.result() for f in futures] == [0, 1]


def library(registry: str, replicas: int) -> Variant:
    def run(client: Client, payload: bytes, log: str, seconds: float) -> None:
        tasks = [{"task_id": i, "log": log, "seconds": seconds} for i in range(2)]
        summary = ResilientCluster(client, tasks, input=payload, task_registry=registry,
                                   max_task_replicas=replicas).distribute(timed_step)
        assert sorted(o.value for o in summary.outputs) == [0, 1], summary

    return run


VARIANTS: dict[str, Variant] = {
    "raw-dask": raw_dask,
    "memory+0": library("memory", 0),
    "disk+2": library("disk", 2),
}


def one_kill(client: Client, variant: Variant, payload: bytes, seconds: float,
             kill_at: float, folder: Path) -> float | None:
    settle(client)
    log = folder / f"starts-{time.monotonic_ns()}.log"
    killer = Killer(log, kill_at)
    variant(client, payload, str(log), seconds)
    killer.join()
    if killer.killed_at is None:
        print(f"  (no kill: {killer.error})")
        return None
    return restart_after(log, killer.killed_at)


def settle(client: Client) -> None:
    """Wait until every worker is back and the cluster holds no task: each repetition
    starts on an idle cluster of N_WORKERS. A worker that does not come back (a nanny
    restarting faster than the scheduler removed the dead worker can be refused
    registration) is brought back by restarting the workers."""
    for patience, restart in ((20.0, True), (60.0, False)):
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            workers, tasks = client.run_on_scheduler(_cluster_state)
            if workers >= N_WORKERS and not tasks:
                return
            time.sleep(0.05)
        if restart:
            print(f"  (only {workers} of {N_WORKERS} workers came back: restarting them)")
            client.restart(wait_for_workers=False)
    raise RuntimeError(f"the cluster did not settle: {workers} workers, {tasks} tasks")


def _cluster_state(dask_scheduler: Any) -> tuple[int, int]:
    return len(dask_scheduler.running), len(dask_scheduler.tasks)


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile, interpolated (with few values, p99 is close to the worst)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return float(statistics.quantiles(ordered, n=100, method="inclusive")[q - 1])


@contextlib.contextmanager
def cluster(workers: int) -> Iterator[Client]:
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as local, Client(local) as client:
        yield client


def measure(client: Client, repeats: int, payload: bytes, seconds: float,
            kill_at: float) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="recovery-") as folder:
        for repeat in range(repeats):
            for name, variant in VARIANTS.items():
                restart = one_kill(client, variant, payload, seconds, kill_at, Path(folder))
                if restart is not None:
                    found[name].append(restart)
                print(f"  repetition {repeat + 1}/{repeats} {name:<9} kill -> restart "
                      + ("n/a" if restart is None else f"{1000 * restart:7.1f} ms"), flush=True)
    return found


def show(found: dict[str, list[float]]) -> None:
    raw = found["raw-dask"]
    raw50 = statistics.median(raw) if raw else float("nan")
    raw99 = percentile(raw, 99) if raw else float("nan")
    print(f"\n  {'variant':<10}{'runs':>5}{'p50 ms':>9}{'p99 ms':>9}{'p50 x raw':>11}"
          f"{'p99 x raw':>11}")
    for name, values in found.items():
        if not values:
            print(f"  {name:<10}{0:>5}   (no measurement)")
            continue
        p50, p99 = statistics.median(values), percentile(values, 99)
        print(f"  {name:<10}{len(values):>5}{1000 * p50:>9.1f}{1000 * p99:>9.1f}"
              f"{p50 / raw50:>11.2f}{p99 / raw99:>11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--kill-at", type=float, default=0.6)
    parser.add_argument("--input-kb", type=int, default=100)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    for name in list(VARIANTS):
        if name not in args.variants.split(","):
            del VARIANTS[name]
    payload = os.urandom(args.input_kb * 1024)
    print(f"kill -> restart: {N_WORKERS} workers x 1 thread, 2 tasks of {args.seconds:g} s, "
          f"a worker SIGKILLed {args.kill_at:g} s in, {args.input_kb} KB input, "
          f"{args.repeats} repetitions (dask {dask.__version__})")
    with cluster(N_WORKERS) as client:
        client.submit(timed_step, b"", task_id=-1, log=os.devnull, seconds=0).result()
        show(measure(client, args.repeats, payload, args.seconds, args.kill_at))


if __name__ == "__main__":
    main()
