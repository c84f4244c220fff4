"""A kill held for the client's scatter stops its victim only once the graceful
shutdowns that had landed before it in the original have landed here: a retirement
moves keys to that victim as it lands, and a stopped victim never gets them."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from chaos.campaign.replays import replay_runs
from chaos.harness.replay_order import ReplayOrder
from tests.chaos.test_lockstep import a_scatter_meets_a_kill, replaying
from tests.checker.histories import WORKERS

# Failing runs of nightly campaigns, saved as the campaign saved them.
ORIGINALS = Path(__file__).parent / "originals"


def retired_before_the_kill(*, fired_after: float = 0.0, landed_after: float = 0.01
                            ) -> list[dict]:
    """`a_scatter_meets_a_kill` (f0 kills worker 0 as t0 starts; the client's scatter
    meets it; its victim dies 0.04 s after), with a retirement of worker 2 fired
    `fired_after` after the kill and landed `landed_after` after it."""
    events = a_scatter_meets_a_kill(died_after=0.04)
    [kill] = [e for e in events if e["type"] == "fault"]
    retire = {**kill, "fault_id": "f1", "kind": "retire",
              "worker": WORKERS[2], "pid": 102,
              "fired_at": kill["fired_at"] + fired_after,
              "landed_at": kill["fired_at"] + landed_after, "noticed_at": None}
    return [*events[:kill["seq"]], retire, *events[kill["seq"]:]]


def test_the_shutdowns_a_held_kill_waits_for_landed_before_it_and_fired_before_its_scatter():
    assert ReplayOrder.of(retired_before_the_kill()).landed_first == {"f0": ("f1",)}
    # Landed after the kill: the kill's victim was stopped or dead by then anyway.
    assert ReplayOrder.of(retired_before_the_kill(landed_after=0.05)).landed_first == {}
    # Fired after the client's scatter: the client, held at it, could never get there.
    assert ReplayOrder.of(retired_before_the_kill(fired_after=0.04, landed_after=0.035)
                          ).landed_first == {}


def test_the_victim_is_stopped_once_the_retirement_landed_or_after_half_the_patience():
    lockstep, writer = replaying(retired_before_the_kill(), patience=0.4)
    race = lockstep.scatter_race("f0")
    assert race is not None
    race.arm()
    client = threading.Thread(target=race.client_at, args=(1,))
    client.start()
    assert race.wait_for_client() is False
    waited = threading.Thread(target=race.wait_for_landings)
    waited.start()
    waited.join(0.1)
    assert waited.is_alive()  # the retirement has not landed
    lockstep.landed("f1")
    waited.join(1)
    assert not waited.is_alive()
    race.release()
    client.join(1)
    assert not [e for e in writer.events if e["type"] == "lockstep-diverged"]
    lockstep.stop()
    # One that never lands: the victim is stopped after half the patience, and said.
    lockstep, writer = replaying(retired_before_the_kill(), patience=0.2)
    race = lockstep.scatter_race("f0")
    assert race is not None
    race.wait_for_landings()
    [diverged] = [e for e in writer.events if e["type"] == "lockstep-diverged"]
    assert diverged["waiting"] == "fault f0's victim" and diverged["missing"] == [["landed", "f1"]]
    lockstep.stop()


def test_nightly_runs_with_a_retirement_before_a_held_kill_replay_exactly(harness, tmp_path):
    """Nightly --seed 9753's `s004`: a retirement moved three inputs to the worker an
    exit then killed as the client's scatter met it, and 8 outputs were lost. Replays
    stopped that worker for the race before the retirement's copies reached it, and
    lost 3 (8 of 10 replays). Twice running, exactly."""
    originals = tmp_path / "runs"
    shutil.copytree(ORIGINALS / "nightly-9753-s004", originals / "s004-dask-raw-scatter")
    report = replay_runs([originals / "s004-dask-raw-scatter"], harness, 2, tmp_path / "replays")
    [run] = report.runs
    assert run.matches == 2, report.to_dict()
