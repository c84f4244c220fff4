"""The command line's cluster options, shared by `run`, `replay` and `campaign`.

    --cluster local                     a LocalCluster in this process (default)
    --cluster processes                 `dask scheduler` + `dask worker --nanny` processes, TLS
    --cluster address --scheduler-address tls://HOST:8786 --tls-ca-file ... --tls-cert ...
    --cluster slurm                     SLURM jobs (dask-jobqueue SLURMCluster), TLS
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from chaos.errors import ChaosError
from chaos.harness import DEFAULT_REFILL_DELAY, ChaosCluster
from chaos.harness.backends import BACKENDS, tls_from_files

TLS_FLAGS = ("tls_ca_file", "tls_cert", "tls_key")


def add_cluster_options(parser: argparse.ArgumentParser) -> Any:
    """Add the cluster options to `parser`; returns their group (for more options)."""
    group = parser.add_argument_group("cluster")
    group.add_argument("--cluster", choices=BACKENDS, default=None,
                       help="local (default): a LocalCluster; processes: `dask scheduler` and "
                       "`dask worker --nanny` processes over TLS; address: an existing "
                       "cluster at --scheduler-address; slurm: SLURM jobs (SLURMCluster), "
                       "preempted with scontrol requeue")
    group.add_argument("--scheduler-address", "--scheduler", dest="scheduler_address",
                       help="tcp://HOST:PORT or tls://HOST:PORT of an existing cluster (implies "
                       "--cluster address); chaos must be installed on its scheduler, nannies "
                       "and workers, which need nannies")
    group.add_argument("--tls-ca-file", help="the CA certificate the cluster trusts (PEM)")
    group.add_argument("--tls-cert", help="this client's certificate (PEM)")
    group.add_argument("--tls-key", help="this client's private key (PEM)")
    group.add_argument("--no-tls", action="store_true",
                       help="--cluster processes over plain TCP (anyone who reaches the port "
                       "can run code on the workers)")
    group.add_argument("--refill-delay", type=refill_delay, default=DEFAULT_REFILL_DELAY,
                       help="seconds before a worker that left for good (retire, nanny-close, "
                       "preempt) is replaced, as an autoscaler would; 'never' to not "
                       f"(default {DEFAULT_REFILL_DELAY:g})")
    group.add_argument("--workers", type=int, default=3, help="workers (local, processes)")
    group.add_argument("--worker-ttl", help="the scheduler's worker-ttl, e.g. 5s (see freeze)")
    return group


def refill_delay(text: str) -> float | None:
    """--refill-delay: seconds >= 0, or 'never'."""
    if text.strip().lower() in ("never", "none", "off"):
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds >= 0 (e.g. 1.0) or 'never'")
    return seconds


def backend_name(args: argparse.Namespace, default: str = "local") -> str:
    name = args.cluster or ("address" if args.scheduler_address else default)
    if args.scheduler_address and name != "address":
        raise ChaosError(f"--scheduler-address goes with --cluster address, not {name!r}.")
    return str(name)


def open_cluster(args: argparse.Namespace, workers: int, quiet: dict[str, Any],
                 default: str = "local") -> ChaosCluster:
    """The ChaosCluster the options ask for (owned: its close() stops what it started)."""
    name = backend_name(args, default)
    given = [flag for flag in TLS_FLAGS if getattr(args, flag)]
    if given and (name != "address" or len(given) < len(TLS_FLAGS)):
        raise ChaosError("--tls-ca-file, --tls-cert and --tls-key go together, with "
                         "--cluster address (the processes backend makes its own).")
    if name == "address":
        security = tls_from_files(args.tls_ca_file, args.tls_cert, args.tls_key) if given else None
        return ChaosCluster.open("address", address=args.scheduler_address, security=security)
    if name == "processes":
        delay = math.inf if args.refill_delay is None else args.refill_delay
        return ChaosCluster.open("processes", workers, tls=not args.no_tls,
                                 worker_ttl=args.worker_ttl, refill_delay=delay)
    if name == "slurm":
        return ChaosCluster.open("slurm", workers, tls=not args.no_tls,
                                 worker_ttl=args.worker_ttl)
    return ChaosCluster.open("local", workers, worker_ttl=args.worker_ttl, **quiet)


def cluster_flags(args: argparse.Namespace) -> list[str]:
    """The options that open the same kind of cluster again (for replay commands)."""
    name = backend_name(args)
    flags = ["--cluster", name]
    if name == "address":
        flags += ["--scheduler-address", args.scheduler_address]
        for flag in TLS_FLAGS:
            if getattr(args, flag):
                flags += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    elif name in ("processes", "slurm"):
        flags += ["--workers", str(args.workers)] + (["--no-tls"] if args.no_tls else [])
    if args.refill_delay != DEFAULT_REFILL_DELAY:
        delay = args.refill_delay
        flags += ["--refill-delay", "never" if delay is None else f"{delay:g}"]
    return flags
