"""Sessions: `nox -s chaos` (the main job), `tests`, `lint`, `demo`, `bench`,
`bench_deploy`, `bench_scale`, `study`, `mutants`.

Each session installs the project into its own virtualenv, so a fresh machine needs
only Python and `pip install nox`.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def chaos(session: nox.Session) -> None:
    """The main job: a `ci` campaign of Hypothesis-drawn fault schedules over the whole
    grid on a LocalCluster, an HTML report (its path is printed), and the gates of
    pyproject's [tool.chaos.gates]; fails when a gate fails. Arguments after `--` go to
    `python -m chaos campaign`, e.g. `nox -s chaos -- --profile nightly`, or
    `-- --profile deploy` (real `dask scheduler`/`dask worker` processes over TLS)."""
    session.install("-e", ".[chaos,deploy]")
    session.run("python", "-m", "chaos", "campaign", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite: real LocalClusters, real signals. Long campaigns are marked slow
    and left to `nox -s chaos`; pass pytest arguments after `--`."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on everything, mypy (strict) on every package (with every extra installed:
    what mypy cannot see, pytest's and Hypothesis's decorators say, becomes Any)."""
    session.install("-e", ".[lint,test]")
    session.run("ruff", "check", ".")
    session.run("mypy", "resilience", "chaos", "experiments", "reports")


@nox.session
def demo(session: nox.Session) -> None:
    """A protocol chain on a LocalCluster while workers are SIGKILLed, with and without
    the library's protection."""
    session.install("-e", ".")
    session.run("python", "examples/preemption_demo.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The library against raw Dask, each figure measured side by side in one run:
    kill -> restart of a killed step (p50, p99), client memory growth and throughput
    over 100,000 tasks, the makespan table; then the harness's speed in schedules per
    minute. Arguments after `--` go to the makespan table (benchmarks/overhead.py)."""
    session.install("-e", ".[chaos]")
    session.run("python", "benchmarks/recovery.py")
    session.run("python", "benchmarks/client_memory.py")
    session.run("python", "benchmarks/overhead.py", *session.posargs)
    session.run("python", "-m", "chaos", "bench")


@nox.session
def bench_deploy(session: nox.Session) -> None:
    """On `dask scheduler`/`dask worker` processes over TLS, side by side in one run: wasted
    work and recovery under preemption with and without the notice plugin; then the PR
    #630 model's losses against the library's on the same schedules (~8 min; `-- --quick`
    for ~4)."""
    session.install("-e", ".[chaos,deploy]")
    session.run("python", "benchmarks/deploy.py", *session.posargs)


@nox.session
def bench_scale(session: nox.Session) -> None:
    """The "disk" registry at a million tasks, without Dask: insert rate, client memory,
    resume time, lazy task generators; PASS/FAIL per target (a few minutes). Arguments
    after `--` go to the script, e.g. `nox -s bench_scale -- --quick`."""
    session.install("-e", ".")
    session.run("python", "benchmarks/registry_scale.py", *session.posargs)


@nox.session
def study(session: nox.Session) -> None:
    """A parameter-tuning study: real runs on a LocalCluster, a simulator calibrated and
    validated on them, recommendation.json and an HTML report (its path is printed).
    `nox -s study -- NAME [--out DIR] [--quick]`; `-- list` names the built-in studies."""
    session.install("-e", ".[experiments]")
    arguments = list(session.posargs) or ["list"]
    if arguments[0] != "list" and arguments[0] != "report":
        arguments = ["run", *arguments]
    session.run("python", "-m", "experiments", *arguments)


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation testing of the library's recovery paths (run loop, dispatch, recovery,
    jobs, delivery, submission, replication, bounded scatters, AMM policy, watch,
    registry, sink, durable, fetch, stalled attempts, phantom inputs, failed tasks) with
    cosmic-ray: each mutant is judged by the fast tests plus a short campaign
    (mutants/judge.py); prints the score and every survivor.
    Arguments after `--` go to mutants/prepare.py, e.g. `nox -s mutants -- --modules
    recovery.py --sample 20`; `nox -s mutants -- --again` judges again only the last
    session's survivors (after writing tests for them)."""
    session.install("-e", ".[test]", "cosmic-ray>=8.7", "pytest-cov>=5")
    db = "build/mutants.sqlite"
    session.run("python", "mutants/prepare.py", db, *session.posargs)
    session.run("cosmic-ray", "exec", "mutants/cosmic-ray.toml", db)
    session.run("python", "mutants/score.py", db)
