"""Recovery percentiles: how long the steps a fault disturbed took to be delivered.

One definition, read by the campaign's summary.json (and so by the `recovery_time` gate)
and by the report's recovery table. The input is `recovery_table`'s rows of one
configuration (or any group of them): `to_deliver` is the seconds from the fault landing
to the first delivery that came from the disturbed step, NaN when it never came (a task
reported failed, or lost: the checker's business, counted here as `never_delivered`).
Percentiles are of the delivered ones, with linear interpolation (numpy's default).
The worst (`to_deliver_max`) also counts a step that never recovered although its task
was never reported failed: it was waited for until the run ended (`until_end`), so its
recovery took at least that long (`never_recovered` counts them).

`working_p50/p99/max` are the same figures less the time the cluster had no worker able
to run (`without_workers`: none there, or only frozen ones): the share of a recovery that
is the library's and Dask's, not the fleet's. When a schedule removes or freezes every
worker, nothing can run until one is back.
`alone_p99` is the p99 of the recoveries no other fault weighed on (`alone_steps` of
them; `other_faults`: none landed before the delivery, no earlier freeze was still on,
and no earlier loss was still unreplaced): one fault's recovery, where the others also
wait out other faults (a 1 s freeze of the worker their next step or their input was
on, a second worker retired, a fleet that earlier faults had left with one worker).
`isolated_p99` and `isolated_max` are both at once, for the faults that take a worker
away (a freeze only pauses one, and its recovery is its length unless `step_timeout`
is set): issue 12's "kill -> delivery", less the time with no worker able to run, with
no other fault in the way (`isolated_steps` of them). That is what the library and Dask
answer for, and what issue 12's goal (p99 <= 1 s) and its gate measure.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from chaos.spec import SCHEDULER_KINDS

RECOVERY_PERCENTILES = (50, 90, 99)


def of_scheduler(recoveries: pd.DataFrame) -> pd.Series:
    """Which rows are recoveries from the scheduler's loss (its outage included): kept
    apart from a worker's everywhere, so that an expected outage hides no slow recovery."""
    return recoveries["kind"].isin(SCHEDULER_KINDS)


def recovery_figures(frame: pd.DataFrame) -> dict[str, Any]:
    """{disturbed_steps, to_resubmit_median, to_deliver_p50/p90/p99/max, working_p50/p99/
    max, alone_steps, alone_p99, isolated_steps, isolated_p99/max, never_delivered,
    never_recovered} (seconds, rounded to the millisecond; None when nothing was
    delivered)."""
    delivered = frame["to_deliver"].dropna()
    never = frame["to_deliver"].isna()
    if "task_failed" in frame:
        never &= ~frame["task_failed"].astype(bool)
    waits = (frame["to_deliver"].where(~never, frame["until_end"]) if "until_end" in frame
             else delivered)
    figures: dict[str, Any] = {
        "disturbed_steps": len(frame),
        "to_resubmit_median": rounded(frame["to_resubmit"].median()),
    }
    for q in RECOVERY_PERCENTILES:
        figures[f"to_deliver_p{q}"] = rounded(delivered.quantile(q / 100))
    figures["to_deliver_max"] = rounded(waits.max())
    if "without_workers" in frame:
        working = frame["to_deliver"] - frame["without_workers"]
        for q in (50, 99):
            figures[f"working_p{q}"] = rounded(working.dropna().quantile(q / 100))
        figures["working_max"] = rounded((waits - frame["without_workers"]).max())
    if "other_faults" in frame:
        alone = frame["other_faults"] == 0
        delivered_alone = frame.loc[alone, "to_deliver"].dropna()
        figures["alone_steps"] = len(delivered_alone)
        figures["alone_p99"] = (rounded(delivered_alone.quantile(0.99))
                                if len(delivered_alone) else None)
        if "without_workers" in frame:
            lost = alone & (frame["kind"] != "freeze") if "kind" in frame else alone
            isolated = (waits - frame["without_workers"])[lost].dropna()
            figures["isolated_steps"] = len(isolated)
            figures["isolated_p99"] = rounded(isolated.quantile(0.99)) if len(isolated) else None
            figures["isolated_max"] = rounded(isolated.max()) if len(isolated) else None
    figures["to_deliver_median"] = figures["to_deliver_p50"]  # the name summaries had before
    figures["never_delivered"] = int(frame["to_deliver"].isna().sum())
    figures["never_recovered"] = int(never.sum()) if "until_end" in frame else 0
    return figures


def rounded(value: Any) -> float | None:
    """A figure for summary.json: rounded to 4 decimals; None when not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 4) if math.isfinite(number) else None
