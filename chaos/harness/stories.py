"""The cluster's story of a key: every transition the scheduler and each worker logged.

A retirement should move a worker's unique data before it removes the worker; when one
still loses scattered data (nightly seeds 9090 and 7070 saw it, once in 900 runs each),
the history alone cannot say where the other copy went. Dask can: the scheduler and
each worker keep a log of their transitions (`Client.story`). A worker that dropped
its copy logs why (`remove-replica`, with the stimulus that asked for it: an AMM pass
is `active_memory_manager-<time>`), the scheduler logs the key's states. The run
records these stories as `key-story` events.
"""

from __future__ import annotations

import logging
from typing import Any

from distributed import Client

from chaos.history import HistoryWriter

logger = logging.getLogger(__name__)

STORY_BOUND = 5.0  # seconds to wait for the stories: a worker may not answer
STORY_ENTRIES = 60  # the latest entries kept per key


def record_stories(client: Client, keys: list[str], history: HistoryWriter) -> None:
    """Write one `key-story` event per key: its latest transitions, oldest first, each
    as `[where, ...fields]`. A cluster that cannot tell is logged, never raised."""
    try:
        entries = client.sync(client._story, *keys, on_error="ignore",
                              callback_timeout=STORY_BOUND)
    except Exception as error:  # a diagnosis must not fail the run
        logger.info("could not collect the stories of %d lost keys: %r", len(keys), error)
        return
    for key in keys:
        story = sorted((_plain(entry) for entry in entries if key in repr(entry)),
                       key=_when)
        history.emit("key-story", key=key, story=story[-STORY_ENTRIES:])


def _plain(entry: Any) -> list[Any]:
    return [part if part is None or isinstance(part, (str, int, float)) else repr(part)
            for part in entry]


def _when(entry: list[Any]) -> float:
    # Every story entry ends with its timestamp.
    return entry[-1] if isinstance(entry[-1], (int, float)) else 0.0
