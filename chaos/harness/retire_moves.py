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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from distributed import Client

from chaos.harness import scheduler_calls
from chaos.history import HistoryWriter

Role = tuple[str, Any, tuple[int, ...], int]  # ("result" | "input", task_id, index, step)


def moved_roles(event: Mapping[str, Any]) -> dict[Role, str]:
    """A retirement's fault event read back: the worker each role's key went to."""
    return {(kind, task_id, tuple(index), step): worker
            for kind, task_id, index, step, worker in event.get("moved") or ()}


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

    def before(self, fault_id: str, victim: str) -> dict[str, Role]:
        """The keys only `victim` holds, by role. In a lockstep replay each is first
        copied to the worker its role's key went to in the original, if that worker is
        another, and not frozen (the copy, and the retire, would wait on it)."""
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

    def after(self, victim: str, roles: Mapping[str, Role]) -> list[list[Any]]:
        """Where each key went: [kind, task_id, index, step, worker], for the event."""
        holders = self._call(scheduler_calls.key_holders, list(roles)) or {}
        return [[*roles[key][:2], list(roles[key][2]), roles[key][3], worker]
                for key, workers in sorted(holders.items())
                for worker in workers if worker != victim][:20]

    def _roles(self, lone: Mapping[str, Sequence[str]]) -> dict[str, Role]:
        steps = {event["key"]: (event["task_id"], tuple(event["index"]), event["step"])
                 for event in self.history.events if event["type"] == "submit"}
        roles: dict[str, Role] = {}
        for key, dependents in lone.items():
            if key in steps:
                roles[key] = ("result", *steps[key])
            elif len(needs := [steps[d] for d in dependents if d in steps]) == 1:
                roles[key] = ("input", *needs[0])
        return roles

    def _call(self, function: Any, *args: Any) -> Any:
        try:
            return self.client.run_on_scheduler(function, *args,
                                                callback_timeout=scheduler_calls.CALL_TIMEOUT)
        except Exception:  # recorded as nothing: the retire goes on
            return None
