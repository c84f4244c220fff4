"""Where a retirement's data went, recorded; and, in a lockstep replay, sent there again.

`retire_workers` moves each key only its victim holds to the worker with the least memory
by the AMM's measure, which counts the worker's unmanaged memory (its RSS) too: two runs
of one schedule send a key to different workers. A step whose input went elsewhere runs
elsewhere, and dies with a later fault there or not: nightly --seed 1357's `s008` sent
t6's input to the first worker, and its replays mostly to the one a 1 s freeze then
held, so t6 ran after the freeze instead of dying with the next kill.

So the fault event of a retirement says where each such key went (`moved`: the key's
role, as the result or the input of a step, and the worker), and a lockstep replay
copies each key of that role to the worker in that place before it retires the victim.
Dask then finds the key held elsewhere and moves nothing. A key is known by its role
because its name differs from run to run; a role this run does not have (a key not on
the victim yet: a scatter still on its way to it) is left to Dask.

Where a key went is asked once the retirement returns, and a worker that died meanwhile
holds nothing by then: nightly --seed 8642's `s006` sent three inputs to a worker a nanny
close took down 2 ms later, `moved` was empty, and 2 of 10 replays let Dask send them to
a survivor. So the event also names the keys only the victim held (`lone`), and a key
that no one held when asked went to the first other worker whose removal lost it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from distributed import Client

from chaos.harness import scheduler_calls
from chaos.harness.death_race import fired_at
from chaos.history import HistoryWriter

Role = tuple[str, Any, tuple[int, ...], int]  # ("result" | "input", task_id, index, step)
Step = tuple[Any, tuple[int, ...], int]  # (task_id, index, step)


def moved_roles(event: Mapping[str, Any]) -> dict[Role, str]:
    """A retirement's fault event read back: the worker each role's key went to."""
    return {(kind, task_id, tuple(index), step): worker
            for kind, task_id, index, step, worker in event.get("moved") or ()}


def retire_destinations(history: Sequence[Mapping[str, Any]]) -> dict[str, dict[Role, str]]:
    """Where each retirement's keys went, by role: as asked after it (`moved`), and for a
    key no one held by then, the first other worker whose removal after the retirement
    fired lost it (`lone`)."""
    removals = [e for e in history if e["type"] == "worker-removed"]
    destinations: dict[str, dict[Role, str]] = {}
    for event in history:
        if event["type"] != "fault" or not (event.get("moved") or event.get("lone")):
            continue
        went = moved_roles(event)
        after = [r for r in removals
                 if r["time"] >= fired_at(event) and r["worker"] != event["worker"]]
        for kind, task_id, index, step, key in event.get("lone") or ():
            role = (kind, task_id, tuple(index), step)
            lost_with = next((r["worker"] for r in after
                              if key in (*r.get("lost_keys", ()),
                                         *r.get("lost_computed_keys", ()))), None)
            if role not in went and lost_with is not None:
                went[role] = lost_with
        destinations[str(event["fault_id"])] = went
    return destinations


class RetireMoves:
    """The keys a retirement moves, for one run: read before, recorded after. A call the
    scheduler does not answer (it was killed, say) records nothing and moves nothing."""

    def __init__(self, client: Client, history: HistoryWriter,
                 frozen: Callable[[], Iterable[str]],
                 recipients: Callable[[str], Mapping[Role, str]] | None = None) -> None:
        self.client = client
        self.history = history
        self._frozen = frozen  # the workers stopped by a freeze now
        self._recipients = recipients  # a lockstep replay's: where the original's went
        self._asked_at: dict[str, float] = {}  # victim -> when `before` asked what it held

    def before(self, fault_id: str, victim: str) -> dict[str, Role]:
        """The keys only `victim` holds, by role. In a lockstep replay each is first
        copied to the worker its role's key went to in the original, if that worker is
        another, and not frozen (the copy, and the retire, would wait on it)."""
        self._asked_at[victim] = time.time()
        roles = self._roles(self._call(scheduler_calls.lone_keys, victim) or {})
        recipients = self._recipients(fault_id) if self._recipients else {}
        skip = {victim, *self._frozen()}
        copies: dict[str, list[str]] = {}
        for key, role in roles.items():
            recipient = recipients.get(role)
            if recipient is not None and recipient not in skip:
                copies.setdefault(recipient, []).append(key)
        if copies:
            failed = self._call(scheduler_calls.copy_keys, copies, victim)
            if failed is None:  # the call itself failed: no copy is known to be made
                failed = [key for keys in copies.values() for key in keys]
            if failed:
                self.history.emit("lockstep-diverged", waiting="a retirement's copies",
                                  missing=[["copy", key] for key in failed[:10]])
        return roles

    def after(self, victim: str, roles: Mapping[str, Role]) -> dict[str, list[list[Any]]]:
        """For the event: where each key went, [kind, task_id, index, step, worker]
        (`moved`), and the keys only the victim held, [kind, task_id, index, step, key]
        (`lone`), or that a scatter put there as it was retired."""
        roles = {**self._scattered_since(victim), **roles}
        holders = (self._call(scheduler_calls.key_holders, list(roles)) if roles else None) or {}
        moved = [[*_fields(roles[key]), worker] for key, workers in sorted(holders.items())
                 for worker in workers if worker != victim]
        lone = [[*_fields(role), key] for key, role in sorted(roles.items())]
        return {"moved": moved[:20], "lone": lone[:20]}

    def _roles(self, lone: Mapping[str, Sequence[str]]) -> dict[str, Role]:
        """Each key's role: the result of the step submitted as it, or the input of the
        one step that needs it, or of the step it was scattered for (whose submit may not
        have reached the scheduler yet: nightly --seed 2020's `s037` retired a worker 0.4
        ms after t2's next step was submitted, and its input, just scattered there, had
        no role; its replays, later by then, sent it elsewhere)."""
        steps = _steps_by_key(self.history.events, "submit")
        scattered = _steps_by_key(self.history.events, "scatter")
        roles: dict[str, Role] = {}
        for key, dependents in lone.items():
            if key in steps:
                roles[key] = ("result", *steps[key])
            elif len(needs := [steps[d] for d in dependents if d in steps]) == 1:
                roles[key] = ("input", *needs[0])
            elif key in scattered:
                roles[key] = ("input", *scattered[key])
        return roles

    def _scattered_since(self, victim: str) -> dict[str, Role]:
        """The inputs a scatter put on `victim` after `before` asked what it held: the
        scheduler had chosen it just before the retirement reached it, and the
        retirement moved them on (nightly --seed 2020's `s037`, rerun: t1's next input
        placed there 6 ms after the retirement fired; its replays, whose retirement
        fired after that scatter, had it by role and let Dask send it elsewhere)."""
        since = self._asked_at.get(victim)
        events = self.history.events
        scattered = _steps_by_key(events, "scatter")
        return {key: ("input", *scattered[key]) for e in events
                if e["type"] == "scatter-placed" and since is not None and e["time"] >= since
                for key, worker in zip(e["keys"], e["workers"], strict=False)
                if worker == victim and key in scattered}

    def _call(self, function: Any, *args: Any) -> Any:
        try:
            return self.client.run_on_scheduler(function, *args,
                                                callback_timeout=scheduler_calls.CALL_TIMEOUT)
        except Exception:  # recorded as nothing: the retire goes on
            return None


def _steps_by_key(events: Sequence[Mapping[str, Any]], kind: str) -> dict[str, Step]:
    """The step each `kind` event ("submit" or "scatter") named, by the key it made."""
    return {event["key"]: (event["task_id"], tuple(event["index"]), event["step"])
            for event in events if event["type"] == kind and event.get("key")}


def _fields(role: Role) -> list[Any]:
    kind, task_id, index, step = role
    return [kind, task_id, list(index), step]
