"""The campaign's cluster, started afresh when it stops reporting results.

Twice in some twenty-five nightly campaigns a LocalCluster stopped telling its client of
results, and a hard reset did not mend it (once after a restarted worker was refused
for the name its dead predecessor still held, and its nanny gave up). The harness can
then not tell a run from a hang, and the campaign used to end there, without a report.
A cluster the campaign started itself can be replaced: closed, started again with the
same options, and the campaign goes on, saying so in its summary and its gates.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from chaos.harness import ChaosCluster

logger = logging.getLogger(__name__)

# Renewals a campaign may make before it stops: a cluster that goes deaf again at once
# is a problem of the machine, not a flake.
MAX_RENEWALS = 2


class RenewableCluster:
    """Holds the campaign's current cluster; `renew` replaces it with a fresh one."""

    def __init__(self, start: Callable[[], ChaosCluster], *, limit: int = MAX_RENEWALS) -> None:
        self._start = start
        self.limit = limit
        self.cluster = start()
        self.renewals: list[str] = []  # why each renewal was made

    def renew(self, why: str) -> ChaosCluster | None:
        """A fresh cluster in place of the current one (closed first), or None once
        `limit` renewals have been made or the fresh one does not start."""
        if len(self.renewals) >= self.limit:
            return None
        with contextlib.suppress(Exception):  # a deaf cluster may not close cleanly
            self.cluster.close()
        try:
            self.cluster = self._start()
        except Exception as error:  # the campaign stops with its report, not a traceback
            logger.warning("could not start a fresh cluster: %r", error)
            return None
        self.renewals.append(why)
        return self.cluster

    def close(self) -> None:
        self.cluster.close()

    def __enter__(self) -> RenewableCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
