"""The campaign's live progress: runs done of total, violations so far, time left.

On a terminal it is one line rewritten in place; elsewhere (CI logs, nox's captured
output) a line every `interval` seconds and whenever a run fails, so a log stays short
but a failure is seen as it happens.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TextIO

from chaos.campaign.execute import CampaignRun


class CampaignProgress:
    """Call `advance(run)` after each run and `finish()` at the end."""

    def __init__(self, total: int, *, stream: TextIO | None = None, interval: float = 15.0,
                 live: bool | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.live = self.stream.isatty() if live is None else live
        self._clock = clock
        self._started = self._clock()
        self._last_print = self._started
        self.done = 0
        self.failing = 0
        self.kinds: Counter[str] = Counter()

    def advance(self, run: CampaignRun) -> None:
        self.done += 1
        failed = run.verdict.failing
        self.failing += failed
        for kind, items in run.verdict.by_kind().items():
            self.kinds[kind] += len(items)
        now = self._clock()
        if self.live:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + self.line(run)[:width].ljust(width))
            if failed:  # keep each failure on screen: it scrolls up, the line goes on
                self.stream.write("\r" + f"  {self._failure(run)}"[:width].ljust(width) + "\n")
        elif failed or now - self._last_print >= self.interval or self.done == self.total:
            self.stream.write(self.line(run) + "\n")
            if failed:
                self.stream.write(f"  {self._failure(run)}\n")
            self._last_print = now
        self.stream.flush()

    def finish(self) -> None:
        if self.live and self.done:
            self.stream.write("\n")
        elapsed = self._clock() - self._started
        self.stream.write(f"{self.done}/{self.total} runs in {_clock(elapsed)}, "
                          f"{self.failing} failing\n")
        self.stream.flush()

    def line(self, last: CampaignRun | None = None) -> str:
        elapsed = self._clock() - self._started
        left = (elapsed / self.done * (self.total - self.done)) if self.done else None
        found = ", ".join(f"{kind} {n}" for kind, n in self.kinds.items() if n)
        text = (f"[{self.done}/{self.total} runs] {self.failing} failing"
                + (f" ({found})" if found else "")
                + f" | {_clock(elapsed)} elapsed, ~{_clock(left)} left")
        if last is not None:
            text += f" | last {last.run_id}: {last.verdict.outcome}"
        return text

    def _failure(self, run: CampaignRun) -> str:
        found = ", ".join(f"{kind} {len(items)}" for kind, items in run.verdict.by_kind().items()
                          if items)
        return f"FAILED {run.run_id}: {run.verdict.outcome} ({found})"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
