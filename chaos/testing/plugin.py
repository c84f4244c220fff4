"""The pytest plugin (a `pytest11` entry point): installing the package is enough.

    def test_my_chain_restarts_safely(preemption):
        preemption.check([fold, relax], tasks=[{"task_id": i, "seed": i} for i in range(3)],
                         input=start_pose)

- fixture `preemption`: `preemption.check(protocols, tasks, input=None, **options)` runs
  `check_preemption_safety` on the session's cluster with the session's seed; an unsafe
  chain fails the test with the explanation and the command that replays it. It
  returns the `SafetyReport`. Tests that use it are marked `preemption`.
- fixture `chaos_client`: the session's cluster, a LocalCluster of 2 nanny workers of
  one thread each, started when first needed and closed when the session ends (or a
  client of `--chaos-scheduler ADDRESS`, a cluster of nanny workers on this machine).
- `--chaos-seed N`: the seed of every check the `preemption` fixture makes in the
  session. Without it, a seed is drawn; it is printed in the header and in every
  failure. A direct call of `check_preemption_safety` keeps its own `seed=` (default 0):
  it names its seed in its code, so it replays as it is.
- marker `preemption`: `-m preemption` runs only these tests, `-m "not preemption"` skips
  them.

pytest loads this module in every session of an environment where the package is
installed, so it imports Dask only inside the fixtures.
"""

from __future__ import annotations

import random
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from chaos.testing.check import Protocol, check_preemption_safety
from chaos.testing.errors import CheckError
from chaos.testing.findings import SafetyReport

if TYPE_CHECKING:
    from distributed import Client

SEED = pytest.StashKey[int]()
MARKER = "preemption"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "preemption-safety checks of protocols (chaos.testing)")
    group.addoption("--chaos-seed", type=int, default=None, metavar="N",
                    help="seed of every check of the `preemption` fixture in the session "
                         "(which workers, which steps are killed and when); default: drawn "
                         "and printed")
    group.addoption("--chaos-scheduler", default=None, metavar="ADDRESS",
                    help="run preemption checks on this cluster (nanny workers on this "
                         "machine) instead of a LocalCluster of 2 workers")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a preemption-safety check of protocols (chaos.testing); "
                   "tests using the `preemption` fixture get it automatically")
    seed = config.getoption("chaos_seed")
    config.stash[SEED] = random.randrange(1_000_000) if seed is None else seed


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.stash[SEED]
    return f"chaos-seed: {seed} (preemption checks; replay with --chaos-seed={seed})"


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "preemption" in getattr(item, "fixturenames", ()):
            item.add_marker(MARKER)


@pytest.fixture(scope="session")
def chaos_client(pytestconfig: pytest.Config) -> Iterator[Client]:
    """A client of the session's cluster: 2 nanny workers, or `--chaos-scheduler`."""
    address = pytestconfig.getoption("chaos_scheduler")
    if address:
        from distributed import Client

        with Client(address, timeout=30) as client:
            yield client
    else:
        from chaos.testing.workers import own_client

        with own_client() as client:
            yield client


class PreemptionCheck:
    """What the `preemption` fixture gives a test: `check(...)` on the session's cluster."""

    def __init__(self, client: Client, seed: int, nodeid: str) -> None:
        self.client = client
        self.seed = seed
        self.replay = f"pytest {shlex.quote(nodeid)} --chaos-seed={seed}"
        self.report: SafetyReport | None = None  # the last check's, for a closer look

    def check(self, protocols: Protocol | Sequence[Protocol],
              tasks: Iterable[Mapping[str, Any]], input: Any = None,
              **options: Any) -> SafetyReport:
        """`check_preemption_safety(...)`; fails the test with the explanation when unsafe."""
        __tracebackhide__ = True
        fixed = sorted({"client", "seed"} & set(options))
        if fixed:
            raise CheckError(
                f"preemption.check() got {', '.join(fixed)}: the fixture takes its client from "
                "chaos_client and its seed from --chaos-seed, so that a failure replays; call "
                "chaos.testing.check_preemption_safety() to choose them yourself."
            )
        self.report = check_preemption_safety(protocols, tasks, input, client=self.client,
                                              seed=self.seed, **options)
        if not self.report.safe:
            raise AssertionError(self.report.explain(replay=self.replay))
        return self.report


@pytest.fixture
def preemption(chaos_client: Client, request: pytest.FixtureRequest) -> PreemptionCheck:
    """`preemption.check(protocols, tasks, input)`: fail the test if a restart is unsafe."""
    return PreemptionCheck(chaos_client, request.config.stash[SEED], request.node.nodeid)
