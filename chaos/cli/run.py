"""`python -m chaos run` and `replay`: run one fault schedule, or a saved one, and summarise it.

    python -m chaos run --target resilience --replicas 2 --registry memory --seed 7 \\
        --faults 3 --out DIR
    python -m chaos replay DIR/schedule.json --out DIR2

`run` writes DIR/history.jsonl, DIR/schedule.json and DIR/summary.json and prints a
one-screen summary. `replay` runs a saved schedule again with the target,
configuration and workload recorded next to it (DIR/summary.json), unless flags
override them; a trigger on "the n-th task to start" strikes the task it struck in the
recorded run (DIR/history.jsonl), and the replay keeps to that run's order of events
(`chaos.harness.lockstep`; `--free` not to). The exit status is 0 for a valid run, 1 when the
checker found a violation or the run hung or crashed, 2 for a usage or configuration
error.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chaos.analysis import summarise_run
from chaos.cli.clusters import add_cluster_options, cluster_flags, open_cluster
from chaos.errors import ChaosError
from chaos.harness import (
    TARGETS,
    ChaosCluster,
    RefillPolicy,
    TargetConfig,
    make_target,
    run_schedule,
)
from chaos.history import (
    HISTORY_FILE,
    RUN_SUMMARY_FILE,
    SCHEDULE_FILE,
    read_history,
    watched_tasks,
)
from chaos.history import replay_command as saved_run_replay
from chaos.spec import DEFAULT_KINDS, FAULT_KINDS, FaultSchedule
from chaos.workload import Workload

# ---------------------------------------------------------------------------- commands


def _run(args: argparse.Namespace) -> int:
    workload = _workload(args, {})
    config = _config(args, {})
    kinds = _kinds(args.kinds)
    schedule = FaultSchedule.generate(args.seed, args.faults, task_ids=workload.task_ids(),
                                      n_steps=workload.n_steps, kinds=kinds)
    return _execute(args, schedule, args.target or "resilience", config, workload)


def _replay(args: argparse.Namespace) -> int:
    source = Path(args.schedule)
    schedule = FaultSchedule.load(source)
    original = (read_history(source.parent / HISTORY_FILE)
                if (source.parent / HISTORY_FILE).is_file() else None)
    if original is not None:  # strike the tasks the original struck
        schedule = schedule.pinned(watched_tasks(original))
    recorded = _recorded_run(source.parent / RUN_SUMMARY_FILE)
    workload = _workload(args, recorded.get("workload", {}))
    config = _config(args, recorded.get("config", {}))
    target = args.target or recorded.get("target") or "resilience"
    # Keep to the original's order of events, unless told not to or the run differs.
    same_run = (original is not None and workload.to_dict() == original[0].get("workload")
                and target == original[0].get("target"))
    return _execute(args, schedule, target, config, workload,
                    replay_of=original if same_run and not args.free else None)


def _execute(args: argparse.Namespace, schedule: FaultSchedule, target: str,
             config: TargetConfig, workload: Workload,
             replay_of: Sequence[Mapping[str, Any]] | None = None) -> int:
    runner = make_target(target)  # refuse an unavailable target before starting a cluster
    runner.check(config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    schedule.save(out / SCHEDULE_FILE)
    with _cluster(args) as cluster:
        record = run_schedule(schedule, runner, config, workload, cluster, out=out,
                              timeout=args.timeout, refill=RefillPolicy(args.refill_delay),
                              replay_of=replay_of)
    summary = summarise_run(record.history, replay_command(out, args),
                            history_path=record.history_path)
    (out / RUN_SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(render(summary, record.schedule))
    return 0 if summary["valid"] else 1


# ---------------------------------------------------------------------------- summary


def render(summary: Mapping[str, Any], schedule: FaultSchedule) -> str:
    """The one-screen text summary printed by `run` and `replay`."""
    config, workload = summary["config"], summary["workload"]
    replicas = "all" if config.get("max_task_replicas") is None else config["max_task_replicas"]
    fanout = "x".join(str(f) for f in workload["fanout"])
    lines = [
        f"chaos run {summary['run_id']}: target {summary['target']}, replicas {replicas}, "
        f"registry {config.get('task_registry')}, "
        f"{'scatter' if config.get('scatter', True) else 'inline'}, seed {summary['seed']}",
        f"workload: {workload['n_tasks']} tasks x {workload['n_steps']} steps (fan-out {fanout}), "
        f"{workload['payload_bytes'] / 1000:g} KB payloads, "
        f"{workload['step_seconds'] * 1000:g} ms {workload['busy']} steps",
        str(schedule),
    ]
    for fault in summary["faults"]:
        landed = _after(fault["landed_at"], fault["fired_at"])
        noticed = _after(fault["noticed_at"], fault["fired_at"])
        lines.append(f"  {fault['fault_id']} fired on {fault['worker']}: landed {landed}, "
                     f"noticed {noticed}" + (f" ({fault['error']})" if fault["error"] else ""))
    for fault in summary["skipped"]:
        lines.append(f"  {fault['fault_id']} skipped: {fault['reason']}")
    lines.append(f"status: {summary['status']} after {summary['makespan']:.2f} s"
                 + (f" ({summary['error'][:160]})" if summary["error"] else ""))
    lines.append(
        f"delivered {summary['delivered']}/{summary['expected']}, lost {summary['lost']}, "
        f"duplicated {summary['duplicated']}, unexpected {summary['unexpected']}, "
        f"corrupted {summary['corrupted']}, reported failed {summary['reported_failed']}"
    )
    verdict = summary["verdict"]
    lines.append(f"verdict: {verdict.get('outcome', '?').upper()}"
                 + (f" - expected {verdict['expected']}" if verdict.get("expected") else ""))
    if summary["history"]:
        folder = Path(summary["history"]).parent
        lines.append(f"wrote {folder}/{{history.jsonl,{SCHEDULE_FILE},{RUN_SUMMARY_FILE}}}")
    lines.append(f"replay: {summary['replay']}")
    return "\n".join(lines)


def replay_command(out: Path, args: argparse.Namespace) -> str:
    if args.cluster != "local" or args.scheduler_address:
        return shlex.join(["python", "-m", "chaos", "replay", str(out / SCHEDULE_FILE),
                           "--out", f"{out}-replay", *cluster_flags(args),
                           "--timeout", f"{args.timeout:g}"])
    return saved_run_replay(out, workers=args.workers, timeout=args.timeout,
                            refill_delay=args.refill_delay)


def _after(moment: float | None, origin: float) -> str:
    return "never" if moment is None else f"+{(moment - origin) * 1000:.0f} ms"


# ---------------------------------------------------------------------------- options


def add_run_commands(commands: Any) -> None:
    """Add the `run` and `replay` subcommands to the `python -m chaos` parser."""
    run = commands.add_parser("run", help="generate a schedule from a seed and run it")
    run.add_argument("--seed", type=int, default=0, help="seeds the schedule and the workload")
    run.add_argument("--faults", type=int, default=1, help="faults in the schedule (default 1)")
    run.add_argument("--kinds", default=",".join(DEFAULT_KINDS),
                     help=f"fault kinds to draw from (default: {','.join(DEFAULT_KINDS)}; "
                     f"all: {','.join(FAULT_KINDS)})")
    run.set_defaults(command=_run)
    replay = commands.add_parser("replay", help="run a saved schedule.json again")
    replay.add_argument("schedule", help="the schedule.json a previous run wrote")
    replay.add_argument("--free", action="store_true",
                        help="do not keep to the original's order of events (its history, "
                             "when beside the schedule, is kept to by default)")
    replay.set_defaults(command=_replay)
    for sub in (run, replay):
        _common(sub)


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--out", required=True, help="folder for history, schedule and summary")
    sub.add_argument("--target", choices=sorted(TARGETS), help="system under test "
                     "(run: resilience; replay: the recorded one)")
    sub.add_argument("--replicas", help="max_task_replicas: an int, or 'all' (None)")
    sub.add_argument("--registry", choices=["none", "memory", "disk"], help="task_registry")
    sub.add_argument("--inline", action="store_true", default=None,
                     help="pass step inputs inline instead of scattering them")
    sub.add_argument("--max-attempts", type=int, help="attempts per task step (default 5)")
    sub.add_argument("--retries", type=int, help="Dask retries= for protocol exceptions")
    sub.add_argument("--step-timeout", type=float, help="seconds one attempt of a step may run")
    sub.add_argument("--notice", type=float, help="install the library's preemption-notice "
                     "plugin for the run, with this many seconds of notice")
    workload = sub.add_argument_group("workload (default: 8 tasks x 2 steps of 50 ms)")
    workload.add_argument("--tasks", type=int)
    workload.add_argument("--steps", type=int)
    workload.add_argument("--fanout", type=int, help="decoys per step")
    workload.add_argument("--payload-bytes", type=int)
    workload.add_argument("--step-seconds", type=float)
    workload.add_argument("--busy", choices=["sleep", "cpu"])
    cluster = add_cluster_options(sub)
    cluster.add_argument("--timeout", type=float, default=60.0,
                         help="seconds before the run is declared hung (default 60)")
    cluster.add_argument("--dask-logs", action="store_true", help="show Dask's own logging")



def _workload(args: argparse.Namespace, recorded: Mapping[str, Any]) -> Workload:
    base = Workload.from_dict(recorded) if recorded else Workload()
    fields = base.to_dict()
    overrides = {"n_tasks": args.tasks, "n_steps": args.steps, "fanout": args.fanout,
                 "payload_bytes": args.payload_bytes, "step_seconds": args.step_seconds,
                 "busy": args.busy}
    if not recorded and hasattr(args, "seed"):
        overrides["seed"] = args.seed
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if args.steps is not None and args.fanout is None and isinstance(fields["fanout"], list):
        fields["fanout"] = fields["fanout"][0]
    return Workload.from_dict(fields)


def _config(args: argparse.Namespace, recorded: Mapping[str, Any]) -> TargetConfig:
    fields = dict(TargetConfig.from_dict(recorded).to_dict()) if recorded else {}
    if args.replicas is not None:
        fields["max_task_replicas"] = None if args.replicas == "all" else _int(args.replicas)
    if args.registry is not None:
        fields["task_registry"] = None if args.registry == "none" else args.registry
    if args.inline:
        fields["scatter"] = False
    for name in ("max_attempts", "retries", "step_timeout", "notice"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    return TargetConfig.from_dict(fields)


def _recorded_run(summary: Path) -> dict[str, Any]:
    if not summary.is_file():
        return {}
    data = json.loads(summary.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _kinds(text: str) -> list[Any]:
    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown or not kinds:
        raise ChaosError(f"--kinds {text!r}: use a comma-separated subset of "
                         f"{','.join(FAULT_KINDS)}.")
    return kinds


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ChaosError(f"--replicas {text!r}: use an int >= 0, or 'all'.") from None


class _cluster:
    """The cluster of one CLI invocation, from --cluster (and --scheduler-address)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.chaos_cluster: ChaosCluster | None = None

    def __enter__(self) -> ChaosCluster:
        quiet = {} if self.args.dask_logs else {"silence_logs": logging.CRITICAL}
        self.chaos_cluster = open_cluster(self.args, self.args.workers, quiet)
        return self.chaos_cluster

    def __exit__(self, *exc: object) -> None:
        if self.chaos_cluster is not None:
            self.chaos_cluster.close()
