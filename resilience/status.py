"""`python -m resilience status PATH`: the progress of a durable run, read from its registry.

Reads only (the registry is opened read-only and verified with its key); safe to run
while the run is going, or after its client died.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resilience.config import REGISTRY_FILE
from resilience.durable import ADMITTED
from resilience.errors import RegistryError
from resilience.sqlite_registry import SQLiteRegistry


def run_status(path: str | Path, key: bytes | None = None) -> dict[str, Any]:
    """The run's progress: counts, attempts, and the failed steps with their reasons."""
    registry_path = Path(path)
    if registry_path.is_dir():  # an output folder: its registry is inside
        registry_path = registry_path / REGISTRY_FILE
    registry = SQLiteRegistry(registry_path, key, read_only=True)
    try:
        counts = registry.counts()
        created = float(registry.meta("created_at") or 0)
        return {
            "registry": str(registry_path),
            "run_id": registry.run_id,
            "created_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created)),
            "protocols": registry.meta("protocol_names") or "",
            "tasks_admitted": int(registry.meta(ADMITTED) or 0),
            "outputs_delivered": counts["outputs_delivered"],
            "steps_in_flight": counts["steps_in_flight"],
            "tasks_failed": counts["tasks_failed"],
            "attempts": registry.attempts_histogram(),
            "failures": [{"task_id": task_id, "index": list(index), "reason": reason}
                         for (task_id, index), reason in registry.failures()],
        }
    finally:
        registry.close()


def format_status(status: dict[str, Any]) -> str:
    def histogram(counts: dict[int, int]) -> str:
        return ", ".join(f"{n} took {attempts}" for attempts, n in sorted(counts.items())) or "-"

    lines = [
        f"run {status['run_id']}  (registry {status['registry']}, created "
        f"{status['created_at']})",
        f"protocols:          {status['protocols']}",
        f"tasks admitted:     {status['tasks_admitted']}",
        f"outputs delivered:  {status['outputs_delivered']}"
        f"   (attempts: {histogram(status['attempts']['delivered'])})",
        f"steps in flight:    {status['steps_in_flight']}"
        f"   (attempts so far: {histogram(status['attempts']['in_flight'])})",
        f"tasks failed:       {status['tasks_failed']}",
    ]
    lines += [f"  task {f['task_id']!r} {tuple(f['index'])}: {f['reason']}"
              for f in status["failures"][:20]]
    if len(status["failures"]) > 20:
        lines.append(f"  ... and {len(status['failures']) - 20} more (--json lists all)")
    state = ("finished" if not status["steps_in_flight"] and status["tasks_admitted"]
             else "unfinished: rerun the same run to resume it")
    lines.append(f"state:              {state}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resilience")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="show the progress of a durable run")
    status.add_argument("path", help="the registry file, or the run's output folder")
    status.add_argument("--key-file", type=Path,
                        help="the registry's key, if not in <registry>.key")
    status.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        key = args.key_file.read_bytes() if args.key_file else None
        result = run_status(args.path, key)
    except (RegistryError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_status(result))
    return 0
