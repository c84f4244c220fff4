"""`python -m chaos run` and `replay`, end to end, in a subprocess with its own cluster."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from chaos import FaultSchedule, read_history
from chaos.history import watched_tasks

SMALL = ["--tasks", "4", "--step-seconds", "0.03", "--payload-bytes", "5000", "--workers", "2"]


def chaos_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chaos", *args], capture_output=True,
                          text=True, timeout=180, check=False)


def fault_points(folder) -> list[tuple]:
    """Each fault where it struck: the task (an `nth` trigger's as it resolved), step, point."""
    return sorted(
        (e["fault_id"], e["kind"], e["trigger"]["type"], e["trigger"]["task_id"],
         e["trigger"].get("step"),
         e["trigger"].get("fraction"), e["trigger"].get("point"))
        for e in read_history(folder) if e["type"] == "fault"
    )


def test_run_then_replay_writes_the_files_and_repeats_the_fault_points(tmp_path):
    first, second = tmp_path / "run", tmp_path / "replay"
    ran = chaos_cli("run", "--target", "resilience", "--replicas", "0", "--registry", "memory",
                    "--seed", "7", "--faults", "2", "--kinds", "sigkill,exit", "--out",
                    str(first), "--refill-delay", "never", *SMALL)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for name in ("history.jsonl", "schedule.json", "summary.json"):
        assert (first / name).is_file()
    summary = json.loads((first / "summary.json").read_text())
    for field in ("target", "config", "seed", "faults_injected", "delivered", "lost",
                  "duplicated", "unexpected", "corrupted"):
        assert field in summary
    assert summary["target"] == "resilience" and summary["seed"] == 7
    assert summary["config"]["task_registry"] == "memory"
    assert (summary["delivered"], summary["lost"]) == (4, 0)
    assert "delivered 4/4" in ran.stdout and "replay: python -m chaos replay" in ran.stdout
    assert "--refill-delay never" in summary["replay"]  # the replay refills as the run did
    schedule = FaultSchedule.load(first / "schedule.json")
    assert len(schedule) == 2 and str(schedule) in ran.stdout

    replayed = chaos_cli("replay", str(first / "schedule.json"), "--out", str(second), *SMALL)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    # "The 2nd task to start" (f1) is pinned to the task it was in the run.
    assert FaultSchedule.load(second / "schedule.json") == schedule.pinned(
        watched_tasks(read_history(first)))
    assert FaultSchedule.load(second / "schedule.json") != schedule
    again = json.loads((second / "summary.json").read_text())
    assert (again["target"], again["config"], again["workload"]) == (
        summary["target"], summary["config"], summary["workload"])
    points = fault_points(first)
    assert points and fault_points(second) == points
    # The replay kept to the run's order of events; with --free it does not.
    assert read_history(second)[0]["lockstep"] is True
    free = chaos_cli("replay", str(first / "schedule.json"), "--out", str(tmp_path / "free"),
                     "--free", *SMALL)
    assert free.returncode == 0, free.stdout + free.stderr
    assert read_history(tmp_path / "free")[0]["lockstep"] is False


def test_dask_logs_stay_off_the_terminal_unless_asked_for(tmp_path):
    # A retired worker logs its closed connection at INFO as it goes, from its own process.
    args = ["run", "--seed", "3", "--kinds", "retire", *SMALL]
    quiet = chaos_cli(*args, "--out", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "distributed." not in quiet.stderr, quiet.stderr
    shown = chaos_cli(*args, "--out", str(tmp_path / "shown"), "--dask-logs")
    assert "distributed." in shown.stderr  # (or nothing above could have failed)


def test_replays_keep_in_lockstep_unless_told_free(tmp_path):
    ran = chaos_cli("run", "--target", "dask-raw", "--seed", "3", "--faults", "0", "--out",
                    str(tmp_path / "runs" / "r0"), *SMALL)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    summary = tmp_path / "runs" / "r0" / "summary.json"  # taken for a failing run
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "valid": False}))
    for flags, lockstep in (([], True), (["--free"], False)):
        kept = tmp_path / f"kept-{lockstep}"
        done = chaos_cli("replays", str(tmp_path / "runs"), "--times", "1", "--keep", str(kept),
                         "--workers", "2", *flags)
        assert "replaying 1 failing run(s) 1 time(s) each" in done.stdout, done.stderr
        assert re.search(r"\[1/1\] r0: ./1 replays match", done.stderr)  # as each run ends
        assert read_history(kept / "r0" / "0")[0]["lockstep"] is lockstep


def test_a_bad_option_exits_2_naming_it(tmp_path):
    done = chaos_cli("run", "--kinds", "sigkill,meteor", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "--kinds 'sigkill,meteor'" in done.stderr
