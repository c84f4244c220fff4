"""Protocols for the check's tests: one safe chain, and one protocol per way to be unsafe.

Every protocol follows the library's signature, `protocol(payload, **task_kwargs)`, and
is short, so that a check of three tasks takes about a second. This module is importable
on the workers (the rootdir is on their path), so its module globals live in the
worker processes, as a user's installed package's would.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STEP_SECONDS = 0.05


# ---------------------------------------------------------------------------- safe


def fold(pose: str, *, seed: int, **kwargs: Any) -> str:
    """Seeded from the task's kwargs: the same task gives the same result anywhere."""
    rng = random.Random(seed)
    time.sleep(STEP_SECONDS)
    return f"{pose}|fold{rng.random():.6f}"


def relax(pose: str, **kwargs: Any) -> str:
    time.sleep(STEP_SECONDS)
    return f"{pose}|relaxed"


def two_decoys(pose: str, *, seed: int, **kwargs: Any) -> list[str]:
    rng = random.Random(seed)
    return [f"{pose}|decoy{i}:{rng.random():.6f}" for i in range(2)]


def writes_only_where_dask_and_python_do(pose: str, **kwargs: Any) -> str:
    """Writes into the folders the check does not watch: Dask's scratch space, bytecode."""
    for folder in ("dask-scratch-space", "__pycache__"):
        Path(folder).mkdir(exist_ok=True)
        Path(folder, f"{os.getpid()}-{time.monotonic_ns()}").write_text("x")
    return pose


# ---------------------------------------------------------------------------- unsafe


def writes_decoy(pose: str, *, task_id: Any, **kwargs: Any) -> str:
    """Writes a decoy to a fixed path in the working directory: a side effect."""
    Path("decoy.pdb").write_text(f"MODEL {task_id}\n{pose}\nENDMDL\n")
    return pose


def writes_decoy_then_works(pose: str, *, task_id: Any, **kwargs: Any) -> str:
    """A side effect first, then work: a kill lands after the write."""
    Path("decoy.pdb").write_text(f"MODEL {task_id}\n{pose}\nENDMDL\n")
    time.sleep(0.15)
    return pose


def writes_to(pose: str, *, out_dir: str, task_id: Any, **kwargs: Any) -> str:
    """Writes into the folder named by the task's kwargs."""
    Path(out_dir, f"decoy-{task_id}.pdb").write_text(pose)
    return pose


def unseeded(pose: str, **kwargs: Any) -> str:
    return f"{pose}|{random.random():.9f}"


_calls = 0


def counts_calls(pose: str, **kwargs: Any) -> str:
    """A module-level counter: the result depends on how many calls this process made."""
    global _calls
    _calls += 1
    return f"{pose}|call{_calls}"


_cache: dict[str, int] = {}


def caches_quietly(pose: str, **kwargs: Any) -> str:
    """A module-level cache that never changes a result, but is state all the same."""
    _cache[pose] = _cache.get(pose, 0) + 1
    return pose


_helper_calls = 0


def _note_call() -> None:
    global _helper_calls
    _helper_calls += 1


def counts_through_a_helper(pose: str, **kwargs: Any) -> str:
    """The state changes in a same-module helper; the output never shows it."""
    _note_call()
    return pose


def grows_its_input(poses: list[str], **kwargs: Any) -> int:
    """Changes its input in place: safe only because every attempt gets a fresh copy."""
    poses.append("decoy")
    return len(poses)


class Counter:
    """A callable object that counts its calls in an attribute."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, pose: str, **kwargs: Any) -> str:
        self.calls += 1
        return f"{pose}|{self.calls}"


def closure_counter() -> Any:
    """State in a closure cell, which no fingerprint sees: only a second call shows it."""
    calls = 0

    def counts_in_a_closure(pose: str, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        return f"{pose}|{calls}"

    return counts_in_a_closure


def leaves_scratch(pose: str, *, task_id: Any, **kwargs: Any) -> str:
    """Writes a scratch file, works, then removes it: clean, unless killed in between."""
    scratch = Path(f"scratch-{task_id}.tmp")
    scratch.write_text("half done")
    time.sleep(0.15)
    scratch.unlink()
    return f"{pose}|done"


def quick_on_calls(pose: str, *, calls: str, quick: list[int], **kwargs: Any) -> str:
    """Takes 0.3 s, except on its calls numbered in `quick` (counted in the directory
    `calls`, outside the watched one), which return at once: a kill aimed there misses."""
    n = 1
    while True:  # a file per call, made atomically: calls on two workers at once
        try:
            os.close(os.open(Path(calls) / f"call-{n}", os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            n += 1
    if n not in quick:
        time.sleep(0.3)
    return f"{pose}|done"


def resumes_from_checkpoint(pose: str, *, task_id: Any, **kwargs: Any) -> str:
    """Resumes from what a killed attempt left: the rerun returns something else."""
    checkpoint = Path(f"checkpoint-{task_id}.txt")
    if checkpoint.exists():
        return f"{pose}|resumed from {checkpoint.read_text()}"
    checkpoint.write_text("stage 1")
    time.sleep(0.15)
    checkpoint.unlink()
    return f"{pose}|fresh"


def hangs(pose: str, **kwargs: Any) -> str:
    time.sleep(60)
    return pose


def returns_a_lock(pose: str, **kwargs: Any) -> Any:
    return threading.Lock()


def raises(pose: str, *, task_id: Any, **kwargs: Any) -> str:
    raise ValueError(f"no rotamers for task {task_id}")


@dataclass(frozen=True)
class StampedPose:
    sequence: str
    made_at: float  # differs on every run: a pickled-bytes comparison sees it


def stamps(pose: str, **kwargs: Any) -> StampedPose:
    return StampedPose(pose, time.time())


def same_sequence(a: StampedPose, b: StampedPose) -> bool:
    return a.sequence == b.sequence
