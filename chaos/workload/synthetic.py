"""A PyRosetta-shaped synthetic workload whose every output is known in advance.

`SyntheticPose` stands in for a PackedPose: an opaque blob of `payload_bytes` bytes
that also carries its lineage (`task_id`, `index`), so a worker-side probe can say
which task and output it is working on without help. Each step of the chain burns
CPU or sleeps for `step_seconds`, reports progress at probe points, and returns
`fanout` decoys. Every output is a pure function of (seed, task_id, index): the
oracle (`Workload.oracle()`) is computed without Dask.

Protocols follow the resilience library's signature, `protocol(payload, **task)`.
Step 0 receives the shared starting structure (`initial_input()`), as PyRosettaCluster
hands `input_packed_pose` to every task.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from chaos.errors import WorkloadError
from chaos.probes import checkpoints, progress
from chaos.spec import OutputKey, TaskId

Busy = Literal["sleep", "cpu"]


@dataclass(frozen=True)
class SyntheticPose:
    """A pose-like payload: opaque bytes plus the lineage that produced them."""

    task_id: TaskId | None
    index: tuple[int, ...]
    pose_bytes: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"SyntheticPose({self.task_id!r}, {self.index}, {len(self.pose_bytes)} bytes)"


@dataclass(frozen=True)
class PoseLineage:
    """What a step needs of its input when the bytes travel elsewhere (in a PackedPose's
    scores, for PyRosettaCluster): the lineage and the hash of the bytes."""

    task_id: TaskId | None
    index: tuple[int, ...]
    content_hash: str


def content_hash(pose: SyntheticPose | PoseLineage) -> str:
    """The sha256 of a pose's bytes, which is all a child step derives from."""
    if isinstance(pose, PoseLineage):
        return pose.content_hash
    if isinstance(pose, SyntheticPose):
        return hashlib.sha256(pose.pose_bytes).hexdigest()
    raise WorkloadError(
        f"got {type(pose).__name__}, not a SyntheticPose or PoseLineage; pass the workload's "
        "initial_input() to the first protocol."
    )


@dataclass(frozen=True)
class Workload:
    """`n_tasks` chains of `n_steps` protocols, each step `step_seconds` long.

    `fanout` is the number of decoys each step returns: one int for every step, or a
    tuple with one int per step. `busy` is "sleep" (I/O-like, cheap on a shared
    machine) or "cpu" (holds the GIL, like a Rosetta mover).
    """

    n_tasks: int = 8
    n_steps: int = 2
    fanout: int | tuple[int, ...] = 1
    payload_bytes: int = 100_000
    step_seconds: float = 0.05
    busy: Busy = "sleep"
    seed: int = 0

    def __post_init__(self) -> None:
        fanout = (self.fanout,) * self.n_steps if isinstance(self.fanout, int) else self.fanout
        fanout = tuple(fanout)
        object.__setattr__(self, "fanout", fanout)
        checks = [
            (self.n_tasks >= 1, f"n_tasks={self.n_tasks}", "at least 1 task"),
            (self.n_steps >= 1, f"n_steps={self.n_steps}", "at least 1 protocol step"),
            (len(fanout) == self.n_steps and all(f >= 1 for f in fanout),
             f"fanout={fanout}", "one int >= 1 per step (or a single int)"),
            (0 <= self.payload_bytes <= 2**30, f"payload_bytes={self.payload_bytes}",
             "between 0 and 1 GiB (100_000 to a few MB is PyRosetta-like)"),
            (self.step_seconds >= 0, f"step_seconds={self.step_seconds}", "0 s or more"),
            (self.busy in ("sleep", "cpu"), f"busy={self.busy!r}", '"sleep" or "cpu"'),
        ]
        for ok, value, rule in checks:
            if not ok:
                raise WorkloadError(f"{value}: a workload needs {rule}.")

    # ------------------------------------------------------------------ inputs

    def task_ids(self) -> list[str]:
        width = len(str(self.n_tasks - 1))
        return [f"t{i:0{width}d}" for i in range(self.n_tasks)]

    def tasks(self) -> list[dict[str, Any]]:
        """The task dicts; each is passed as **kwargs to every protocol."""
        return [{"task_id": task_id} for task_id in self.task_ids()]

    def initial_input(self) -> SyntheticPose:
        """The starting structure every task's first step receives."""
        return SyntheticPose(None, (), _expand(f"input:{self.seed}".encode(), self.payload_bytes))

    def protocols(self) -> list[SyntheticStep]:
        return [SyntheticStep(self, step) for step in range(self.n_steps)]

    # ------------------------------------------------------------------ oracle

    def oracle(self) -> dict[OutputKey, str]:
        """The fault-free digest of every final output, by (task_id, index)."""
        return dict(_oracle(self))

    def expected_outputs(self) -> int:
        count = 1
        for decoys in self.fanout:  # type: ignore[union-attr]
            count *= decoys
        return self.n_tasks * count

    def digest(self, value: Any) -> str:
        """The digest of a delivered value: lineage and bytes, so a swap is caught too."""
        if not isinstance(value, SyntheticPose):
            return "not-a-synthetic-pose:" + type(value).__name__
        lineage = f"{value.task_id!r}|{list(value.index)}|".encode()
        return hashlib.sha256(lineage + value.pose_bytes).hexdigest()

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fanout"] = list(self.fanout)  # type: ignore[arg-type]
        return {"kind": "synthetic", **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workload:
        fields = {k: v for k, v in data.items() if k != "kind"}
        if data.get("kind", "synthetic") != "synthetic":
            raise WorkloadError(
                f"workload kind {data.get('kind')!r} is not 'synthetic', the only kind this "
                "harness rebuilds; an oracle for another workload must come from elsewhere."
            )
        if isinstance(fields.get("fanout"), list):
            fields["fanout"] = tuple(fields["fanout"])
        try:
            return cls(**fields)
        except TypeError as error:
            raise WorkloadError(f"workload {dict(data)!r} has a bad field ({error}).") from None


class SyntheticStep:
    """Protocol `step` of a workload: busy for `step_seconds`, then `fanout` decoys.

    A class rather than a closure so that it pickles by reference (the package is
    installed on the workers) and carries its workload.
    """

    def __init__(self, workload: Workload, step: int) -> None:
        self.workload = workload
        self.step = step
        self.__name__ = f"synthetic_step_{step}"

    def __repr__(self) -> str:
        return f"SyntheticStep(step={self.step}, seed={self.workload.seed})"

    def __call__(self, payload: Any, **task: Any) -> list[SyntheticPose]:
        _busy(self.workload.step_seconds, self.workload.busy)
        return derive(self.workload, payload, task["task_id"], self.step)


def derive(workload: Workload, parent: Any, task_id: TaskId, step: int) -> list[SyntheticPose]:
    """The decoys step `step` makes from `parent`: a pure function of its arguments."""
    parent_hash = content_hash(parent)
    index = tuple(parent.index) if step > 0 else ()
    fanout: tuple[int, ...] = workload.fanout  # type: ignore[assignment]
    return [
        SyntheticPose(task_id, (*index, j), _expand(
            f"{workload.seed}|{task_id!r}|{step}|{[*index, j]}|{parent_hash}".encode(),
            workload.payload_bytes,
        ))
        for j in range(fanout[step])
    ]


def _busy(seconds: float, mode: Busy) -> None:
    """Spend `seconds` of work, stopping at the probe checkpoints the harness asked for."""
    done = 0.0
    for fraction in (*checkpoints(), 1.0):
        _spend(seconds * (fraction - done), mode)
        done = fraction
        if fraction < 1.0:
            progress(fraction)


def _spend(seconds: float, mode: Busy) -> None:
    if seconds <= 0:
        return
    if mode == "sleep":
        time.sleep(seconds)
        return
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(200))


def _expand(material: bytes, size: int) -> bytes:
    return random.Random(hashlib.sha256(material).digest()).randbytes(size)


@functools.lru_cache(maxsize=16)
def _oracle(workload: Workload) -> tuple[tuple[OutputKey, str], ...]:
    found: list[tuple[OutputKey, str]] = []
    for task in workload.tasks():
        layer = [workload.initial_input()]
        for step in range(workload.n_steps):
            layer = [child for parent in layer
                     for child in derive(workload, parent, task["task_id"], step)]
        found.extend(((task["task_id"], pose.index), workload.digest(pose)) for pose in layer)
    return tuple(found)
