"""The notice plugin's refusals, without a cluster: a start method that defeats it, and a
notice that is no number of seconds."""

from __future__ import annotations

import asyncio

import dask
import pytest

from resilience import ConfigError
from resilience.notice import NoticeNannyPlugin, NoticeWorkerPlugin


def test_a_nanny_whose_workers_start_from_a_forkserver_is_refused_naming_the_fix():
    # pytest runs tests in the main thread, where the plugin would install its handler.
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}), \
            pytest.raises(ConfigError, match=r"forkserver.*spawn"):
        asyncio.run(NoticeNannyPlugin(5.0).setup(None))  # type: ignore[arg-type]


@pytest.mark.parametrize("notice", [0, -3, "soon", float("nan")])
def test_a_notice_that_is_no_positive_number_of_seconds_is_refused(notice):
    with pytest.raises(ConfigError, match="must be a number of seconds > 0"):
        NoticeWorkerPlugin(notice)
