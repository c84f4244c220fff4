"""Sessions: `nox -s chaos` (the main job), `tests`, `lint`, `demo`, `bench`,
`bench_scale`.

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
    `python -m chaos campaign`, e.g. `nox -s chaos -- --profile nightly`."""
    session.install("-e", ".[chaos]")
    session.run("python", "-m", "chaos", "campaign", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite: real LocalClusters, real signals. Long campaigns are marked slow
    and left to `nox -s chaos`; pass pytest arguments after `--`."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on everything, mypy (strict) on the library."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("mypy", "resilience")


@nox.session
def demo(session: nox.Session) -> None:
    """A protocol chain on a LocalCluster while workers are SIGKILLed, with and without
    the library's protection."""
    session.install("-e", ".")
    session.run("python", "examples/preemption_demo.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The library's makespan against raw Dask, side by side on one cluster; then the
    harness's speed in schedules per minute. Arguments after `--` go to the first."""
    session.install("-e", ".[chaos]")
    session.run("python", "benchmarks/overhead.py", *session.posargs)
    session.run("python", "-m", "chaos.bench_campaign")


@nox.session
def bench_scale(session: nox.Session) -> None:
    """The "disk" registry at a million tasks, without Dask: insert rate, client memory,
    resume time, lazy task generators; PASS/FAIL per target (a few minutes). Arguments
    after `--` go to the script, e.g. `nox -s bench_scale -- --quick`."""
    session.install("-e", ".")
    session.run("python", "benchmarks/registry_scale.py", *session.posargs)
