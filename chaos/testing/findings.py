"""What a preemption-safety check found, and how it reads to the person who must fix it.

A `Finding` is evidence, not a boolean: the protocol, the task and the step, what
differed or what was left behind, and how to fix it. A `SafetyReport` holds every
finding of one check together with the seed that replays it; `explain()` is the text
that `assert_preemption_safe`, the pytest fixture and the command line print.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

WIDTH = 88  # columns of explain()'s text

FindingKind = Literal[
    "nondeterministic", "side-effect", "partial-state", "hidden-state", "not-picklable", "error",
]
KINDS: tuple[FindingKind, ...] = (
    "nondeterministic", "side-effect", "partial-state", "hidden-state", "not-picklable", "error",
)

WHAT: dict[str, str] = {
    "nondeterministic": "the same input gave different outputs",
    "side-effect": "it changed files in the watched paths",
    "partial-state": "a killed attempt left state behind",
    "hidden-state": "it carries state from one call to the next",
    "not-picklable": "something that must cross to a worker cannot be pickled",
    "error": "the step failed",
}

FIXES: dict[str, str] = {
    "nondeterministic": (
        "seed every random generator from the task's kwargs (random.Random(kwargs['seed']), "
        "numpy.random.default_rng(seed); for PyRosetta, '-run:constant_seed 1 -run:jran <seed>' "
        "in its init options, as PyRosettaCluster does per task) and do not read the clock, "
        "the host or the worker. If equal outputs pickle differently, pass compare=."
    ),
    "side-effect": (
        "return what the protocol makes as an output instead of writing it "
        "(ResilientCluster(output_path=...) writes each output exactly once). A file that "
        "must be written belongs outside the working directory, under a name taken from "
        "the task's kwargs, written to a temporary file and renamed into place (os.replace)."
    ),
    "partial-state": (
        "write to a temporary file and rename it into place (os.replace) as the last thing "
        "the step does, keep scratch files in a tempfile.TemporaryDirectory, and never read "
        "what an earlier attempt may have left: a killed attempt must leave nothing behind "
        "that a rerun or a person can see."
    ),
    "hidden-state": (
        "avoid module globals, class attributes and caches that change between calls: pass "
        "what the step needs in its payload or the task's kwargs. A cache is fine only if it "
        "can never change a result (functools.lru_cache of a pure function)."
    ),
    "not-picklable": (
        "inputs, task kwargs, protocols and outputs travel between processes and into the "
        "task registry: return plain data or a PackedPose "
        "(pyrosetta.distributed.packed_pose.to_packed(pose)) rather than a Pose, and do not "
        "capture open files, locks or clients in a protocol."
    ),
    "error": (
        "a step must succeed from its input and the task's kwargs alone, on any worker: fix "
        "the error above (a module the workers cannot import must be installed where they run)."
    ),
}


@dataclass(frozen=True)
class Finding:
    """One problem: `kind`, where (`protocol`, `task_id`, `step`), and `detail`.

    `task_id` is None when the problem concerns every task (a protocol that cannot be
    pickled). `fix` overrides the advice that goes with the kind.
    """

    kind: FindingKind
    task_id: Any
    step: int
    detail: str
    protocol: str = ""
    fix: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Finding kind {self.kind!r} is not one of {', '.join(KINDS)}.")

    @property
    def advice(self) -> str:
        """How to fix it."""
        return self.fix or FIXES[self.kind]

    @property
    def where(self) -> str:
        task = "every task" if self.task_id is None else f"task {self.task_id!r}"
        return f"protocol {self.protocol or '?'}, {task}, step {self.step}"

    def __str__(self) -> str:
        return f"[{self.kind}] {self.where}: {self.detail}"


@dataclass(frozen=True)
class KillRecord:
    """One SIGKILL aimed part-way through a step, and whether it landed before the step ended."""

    task_id: Any
    step: int
    worker: str
    fraction: float  # of the uninterrupted run's duration, when the kill was sent
    landed: bool
    note: str = ""


@dataclass(frozen=True)
class SafetyReport:
    """The result of `check_preemption_safety`. `safe` when there is no finding."""

    findings: list[Finding]
    seed: int
    protocols: tuple[str, ...] = ()
    task_ids: tuple[Any, ...] = ()
    watched: tuple[str, ...] = ()
    calls: int = 0  # protocol calls made on workers
    kills: tuple[KillRecord, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def safe(self) -> bool:
        return not self.findings

    def kinds(self) -> set[str]:
        return {finding.kind for finding in self.findings}

    def aimed(self) -> dict[tuple[Any, int], bool]:
        """(task_id, step) of each step a kill was aimed at: whether one landed part-way
        (a step that ended before its kill is killed again, on a new attempt)."""
        aimed: dict[tuple[Any, int], bool] = {}
        for kill in self.kills:
            where = (kill.task_id, kill.step)
            aimed[where] = aimed.get(where, False) or kill.landed
        return aimed

    def unkilled(self) -> list[tuple[Any, int]]:
        """The steps aimed at whose every kill missed (each ended before its kill, or the
        kill was not confirmed): what they leave when preempted is not known."""
        return [where for where, landed in self.aimed().items() if not landed]

    def explain(self, replay: str | None = None) -> str:
        """The readable report: one block per kind, protocol and step, then how to replay."""
        if replay is None:
            replay = f"check_preemption_safety(..., seed={self.seed})"
        verdict = "safe to restart" if self.safe else (
            f"NOT safe to restart: {len(self.findings)} finding"
            f"{'s' if len(self.findings) != 1 else ''}")
        if self.safe and (unkilled := self.unkilled()):
            verdict += (f", except where no kill landed part-way: {len(unkilled)} of the "
                        f"{len(self.aimed())} steps aimed at "
                        "(each ended before its kill, or the kill was not confirmed)")
        lines = [f"preemption check (seed {self.seed}): {verdict}"]
        for block in _grouped(self.findings):
            lines.append("")
            lines.extend(block)
        lines.append("")
        lines.extend(textwrap.wrap(self.summary(), WIDTH, break_long_words=False,
                                   break_on_hyphens=False))
        for note in self.notes:
            lines.extend(_wrapped(note, "note: ", "      "))
        if not self.safe:
            lines.append(f"replay: {replay}")
        return "\n".join(lines)

    def summary(self) -> str:
        landed = sum(1 for kill in self.kills if kill.landed)
        tasks = ", ".join(repr(task_id) for task_id in self.task_ids)
        return (
            f"checked {' -> '.join(self.protocols) or 'no protocol'} on tasks {tasks or '-'}: "
            f"{_count(self.calls, 'protocol call')}, SIGKILL aimed at "
            f"{_count(len(self.aimed()), 'step')} ({_count(len(self.kills), 'try', 'tries')}, "
            f"{landed} landed part-way), {self.seconds:.1f} s; "
            f"watched {', '.join(self.watched) or '-'}, except Dask's scratch space, bytecode, "
            "version-control and tool caches, and virtual environments"
        )

    def __str__(self) -> str:
        return self.explain()


def _grouped(findings: Sequence[Finding]) -> list[list[str]]:
    """Findings of one kind, protocol and step together, the advice given once."""
    groups: dict[tuple[str, str, int], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.kind, finding.protocol, finding.step), []).append(finding)
    blocks = []
    for (kind, protocol, step), members in groups.items():
        block = [f"[{kind}] protocol {protocol or '?'}, step {step}: {WHAT[kind]}"]
        for finding in members:
            task = "every task" if finding.task_id is None else f"task {finding.task_id!r}"
            first, *rest = finding.detail.splitlines() or [""]
            block.extend(_wrapped(first, f"  {task}: ", "      "))
            block.extend(f"      {line}" for line in rest)  # a traceback, as it was
        for advice in dict.fromkeys(finding.advice for finding in members):
            block.extend(_wrapped(advice, "  fix: ", "       "))
        blocks.append(block)
    return blocks


def _count(n: int, thing: str, things: str | None = None) -> str:
    return f"{n} {thing if n == 1 else things or thing + 's'}"


def _wrapped(text: str, first: str, then: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=then,
                         break_long_words=False, break_on_hyphens=False)
