"""`python -m chaos check-protocols`: the preemption-safety check, for people without pytest.

    python -m chaos check-protocols mypkg.protocols:fold,relax --tasks tasks.json \\
        [--input mypkg.inputs:start_pose] [--watch PATH]... [--kills 3] [--seed 0]

`MODULE:FUNC[,FUNC...]` names the chain in order; a name without a module takes the
last module named (`a:fold,relax,b:score`). `tasks.json` holds a JSON list of objects,
each the keyword arguments of every protocol for one task. `--input MODULE:NAME` is
step 0's payload: that attribute, called with no arguments if it is callable. As with
`python -m`, the working directory is on the import path. The exit status is 0 when
the chain is safe to restart, 1 when the check found something, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chaos.testing.check import Protocol, check_preemption_safety
from chaos.testing.errors import CheckError

COMMAND = "check-protocols"


def main(argv: Sequence[str] | None = None) -> int:
    """The command on its own (chaos.cli registers the same one with `add_check_command`)."""
    parser = argparse.ArgumentParser(prog="python -m chaos")
    add_check_command(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return int(args.command(args))
    except CheckError as error:
        print(f"chaos {COMMAND}: {error}", file=sys.stderr)
        return 2


def add_check_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `check-protocols` on an argparse subparsers object; returns its parser."""
    sub: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND, help="check that protocols are safe to restart after preemption",
        description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub.add_argument("protocols", metavar="MODULE:FUNC[,FUNC...]",
                     help="the chain of protocols, in order")
    sub.add_argument("--tasks", required=True, metavar="TASKS.json",
                     help="a JSON list of task objects (the **kwargs of every protocol)")
    sub.add_argument("--input", metavar="MODULE:NAME",
                     help="step 0's payload: an attribute, called if callable (default None)")
    sub.add_argument("--watch", action="append", default=[], metavar="PATH",
                     help="a path to watch besides the working directory (repeatable)")
    sub.add_argument("--kills", type=int, default=3, help="steps SIGKILLed part-way (default 3)")
    sub.add_argument("--seed", type=int, default=0, help="seeds the choices (default 0)")
    sub.add_argument("--timeout", type=float, default=60.0,
                     help="seconds one attempt of one step may take (default 60)")
    sub.add_argument("--scheduler", metavar="ADDRESS",
                     help="an existing cluster (nanny workers on this machine); default: a "
                          "LocalCluster of 2 workers")
    sub.add_argument("--dask-logs", action="store_true", help="show Dask's own logging")
    sub.set_defaults(command=run_check)
    return sub


def run_check(args: argparse.Namespace) -> int:
    protocols = load_protocols(args.protocols)
    tasks = load_tasks(Path(args.tasks))
    payload = load_input(args.input) if args.input else None
    if not args.dask_logs:
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # kills are expected
    options: dict[str, Any] = {"watch": args.watch, "kills": args.kills, "seed": args.seed,
                               "timeout": args.timeout}
    if args.scheduler:
        from distributed import Client

        with Client(args.scheduler, timeout=30) as client:
            report = check_preemption_safety(protocols, tasks, payload, client=client, **options)
    else:
        report = check_preemption_safety(protocols, tasks, payload, **options)
    print(report.explain(replay=replay_command(args)))
    return 0 if report.safe else 1


def replay_command(args: argparse.Namespace) -> str:
    words = ["python", "-m", "chaos", COMMAND, args.protocols, "--tasks", args.tasks]
    if args.input:
        words += ["--input", args.input]
    for path in args.watch:
        words += ["--watch", path]
    words += ["--kills", str(args.kills), "--seed", str(args.seed)]
    return shlex.join(words)


def load_protocols(text: str) -> list[Protocol]:
    """'mod:fold,relax,other:score' -> [mod.fold, mod.relax, other.score]."""
    chain, module = [], None
    for part in (piece.strip() for piece in text.split(",")):
        if ":" in part:
            module_name, _, part = part.partition(":")
            module = _import(module_name, text)
        if module is None or not part:
            raise CheckError(f"{text!r}: name the protocols as MODULE:FUNC[,FUNC...], e.g. "
                             "mypkg.protocols:fold,relax.")
        protocol = getattr(module, part, None)
        if not callable(protocol):
            raise CheckError(f"{text!r}: module {module.__name__} has no function {part!r} "
                             f"(found {type(protocol).__name__}).")
        chain.append(protocol)
    return chain


def load_tasks(path: Path) -> list[dict[str, Any]]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CheckError(f"--tasks {str(path)!r}: cannot read it ({error.strerror}).") from None
    except json.JSONDecodeError as error:
        raise CheckError(f"--tasks {str(path)!r} is not JSON ({error}); write a list of "
                         'objects, e.g. [{"task_id": 0, "seed": 0}].') from None
    if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
        raise CheckError(f"--tasks {str(path)!r} holds {type(tasks).__name__}, not a list of "
                         'objects; write e.g. [{"task_id": 0, "seed": 0}, {"task_id": 1, '
                         '"seed": 1}].')
    return tasks


def load_input(text: str) -> Any:
    module_name, _, name = text.partition(":")
    if not name:
        raise CheckError(f"--input {text!r}: name it as MODULE:NAME (an object, or a "
                         "function called with no arguments that returns it).")
    module = _import(module_name, text)
    if not hasattr(module, name):
        raise CheckError(f"--input {text!r}: module {module_name} has no attribute {name!r}.")
    value = getattr(module, name)
    return value() if callable(value) else value


def _import(module_name: str, text: str) -> Any:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise CheckError(f"{text!r}: cannot import {module_name!r} ({error}); run from the "
                         "folder that holds it, or install it.") from None
