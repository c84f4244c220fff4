"""Planted bugs: the REAL resilience library with one source change, run by the `ci` campaign.

Each `PlantedBug` is a small textual patch of `resilience/`. `planted_library` copies the
package to a temporary folder and applies the patch there; `run_ci_campaign` then runs
`python -m chaos campaign --profile ci` in a subprocess whose `PYTHONPATH` starts with
that folder (and whose working directory is elsewhere than the project), so the client
and every LocalCluster worker (forkserver children inherit the client's `sys.path`)
import the broken copy. The campaign must catch each bug: its gates fail, and the
violation class is the one the bug causes.

A patch that no longer applies (the library changed) fails loudly, naming the hunk,
rather than testing nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
LIBRARY = PROJECT / "resilience"

# (file under resilience/, text to replace, replacement): each old text must occur once.
Hunk = tuple[str, str, str]


@dataclass(frozen=True)
class PlantedBug:
    name: str
    what: str
    hunks: tuple[Hunk, ...]
    grid: str  # the configurations where the bug shows (a --grid)
    caught_as: str  # the violation class the campaign must report
    gate: str  # the gate that must fail
    clean_runs: int = 0


PLANTED_BUGS: tuple[PlantedBug, ...] = (
    PlantedBug(
        "outputs-swapped",
        "the fetch pairs each key with another key's result: outputs of two tasks swapped",
        (("fetch.py",
          "return {str(key): value for key, value in gathered.items() if value is not None}",
          "return {str(key): value for key, value in zip(gathered, reversed(list("
          "gathered.values()))) if value is not None}"),),
        grid="replicas=0;registry=none;scatter=on", caught_as="corrupted", gate="exactly_once",
        clean_runs=1,
    ),
    PlantedBug(
        "no-resubmit-on-lost-input",
        "the recovery policy never resubmits a step whose input was lost",
        (("recovery.py",
          'return (cause != "protocol-error" and (self._has_registry or holds_payload)',
          'return (cause not in ("protocol-error", "lost-input") and (self._has_registry '
          'or holds_payload)'),),
        grid="replicas=0;registry=memory;scatter=on", caught_as="reported-failed",
        gate="must_deliver_violations",
    ),
    PlantedBug(
        "one-replica-short",
        "inputs get one copy fewer than max_task_replicas asks for",
        (("replication.py",
          "self._replicas = config.max_task_replicas\n",
          "self._replicas = config.max_task_replicas and config.max_task_replicas - 1\n"),),
        grid="replicas=2;registry=none;scatter=on", caught_as="reported-failed",
        gate="must_deliver_violations",
    ),
    PlantedBug(
        "registry-drops-step-input",
        "the memory registry keeps step 0's records only: a later step's input is dropped",
        (("registry.py",
          "            for record in add:\n                self._records[record.key] = record",
          "            for record in add:\n                if record.step == 0:\n"
          "                    self._records[record.key] = record"),),
        grid="replicas=0;registry=memory;scatter=on", caught_as="reported-failed",
        gate="must_deliver_violations",
    ),
    PlantedBug(
        "no-dedup",
        "deduplication off in the delivery path: losing attempts are neither cancelled nor "
        "suppressed, and the ledger admits every output (the library deduplicates in these "
        "three layers; any one alone is masked by the other two)",
        (("jobs.py",
          "        self.jobs.pop(job.key, None)\n        losers = list(job.live.values())",
          "        self.jobs.pop(job.key, None)\n        return []\n"
          "        losers = list(job.live.values())"),
         ("runloop.py",
          "                    if job.done:  # a sibling won first (maybe in this same batch)\n"
          "                        self._duplicates += 1",
          "                    if job.done and False:\n"
          "                        self._duplicates += 1"),
         ("delivery.py",
          '        """Whether each output is new (claimed now, never again)."""\n',
          '        """Whether each output is new (claimed now, never again)."""\n'
          "        return [True for _ in indexes]\n")),
        grid="replicas=0;registry=memory;scatter=on;timeout=0.5", caught_as="duplicated",
        gate="exactly_once",
    ),
)
BY_NAME = {bug.name: bug for bug in PLANTED_BUGS}


def planted_library(bug: PlantedBug, folder: Path) -> Path:
    """A copy of resilience/ under `folder` with the bug planted; returns `folder`."""
    target = folder / "resilience"
    shutil.copytree(LIBRARY, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name, old, new in bug.hunks:
        path = target / name
        text = path.read_text(encoding="utf-8")
        if text.count(old) != 1:
            raise AssertionError(
                f"planted bug {bug.name!r}: resilience/{name} has {text.count(old)} copies of "
                f"the hunk {old!r} (expected exactly 1); update the patch to the library."
            )
        path.write_text(text.replace(old, new), encoding="utf-8")
    return folder


def planted_env(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), *filter(None, [env.get("PYTHONPATH")])])
    return env


def imported_by_workers(folder: Path, timeout: float = 120) -> dict[str, str]:
    """Where the client and a LocalCluster worker import `resilience` from, in the
    planted environment (run in a subprocess, like the campaign)."""
    script = (
        "import json, logging, dask, resilience\n"
        "from distributed import Client, LocalCluster\n"
        "dask.config.set({'distributed.worker.multiprocessing-method': 'forkserver'})\n"
        "with LocalCluster(n_workers=1, processes=True, dashboard_address=None,\n"
        "                  silence_logs=logging.CRITICAL) as c, Client(c) as client:\n"
        "    worker = list(client.run(lambda: __import__('resilience').__file__).values())[0]\n"
        "print(json.dumps({'client': resilience.__file__, 'worker': worker}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=folder, env=planted_env(folder),
                          capture_output=True, text=True, timeout=timeout, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@dataclass(frozen=True)
class CampaignOutcome:
    returncode: int
    summary: dict[str, Any]
    gates: dict[str, Any]
    log: str

    def gate(self, name: str) -> dict[str, Any]:
        [found] = [g for g in self.gates["gates"] if g["name"] == name]
        return found

    def violations(self) -> dict[str, int]:
        """Violations by class over every configuration of the campaign."""
        totals: dict[str, int] = {}
        for configuration in self.summary["configurations"].values():
            for kind, counts in configuration["violations"].items():
                totals[kind] = totals.get(kind, 0) + counts["count"]
        return {kind: n for kind, n in totals.items() if n}


def run_ci_campaign(bug: PlantedBug | None, folder: Path, *, timeout: float = 600,
                    run_timeout: float = 20) -> CampaignOutcome:
    """The `ci` campaign (its fixed schedules only) on the bug's configurations, against
    the planted copy in `folder` (None: the real library, the control)."""
    lib = folder / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    env = planted_env(lib) if bug is not None else dict(os.environ)
    if bug is not None:
        planted_library(bug, lib)
    grid = bug.grid if bug is not None else "replicas=0;registry=memory;scatter=on"
    out = folder / "campaign"
    command = [sys.executable, "-m", "chaos", "campaign", "--profile", "ci",
               "--targets", "resilience", "--grid", grid, "--schedules", "0", "--no-cover",
               "--clean-runs", str(bug.clean_runs if bug is not None else 0),
               "--timeout", f"{run_timeout:g}", "--gates", str(PROJECT / "pyproject.toml"),
               "--out", str(out)]
    done = subprocess.run(command, cwd=lib, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    log = done.stdout + done.stderr
    if not (out / "summary.json").is_file():
        raise AssertionError(f"the campaign wrote no summary ({done.returncode}):\n{log[-3000:]}")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    gates = json.loads((out / "gates.json").read_text(encoding="utf-8"))
    return CampaignOutcome(done.returncode, summary, gates, log)
