"""`python -m chaos campaign` end to end, in a subprocess with its own small cluster:
the report folder, summary.json, gates.json, the exit status, and replay commands that
reproduce a failing run."""

from __future__ import annotations

import json
import subprocess
import sys

SMALL = ["--tasks", "4", "--step-seconds", "0.03", "--payload-bytes", "5000",
         "--workers", "2", "--timeout", "20"]


def chaos_cli(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chaos", *args], capture_output=True,
                          text=True, timeout=240, check=False, cwd=cwd)


def test_a_small_campaign_writes_its_folder_and_fails_on_a_broken_gate(tmp_path):
    strict = tmp_path / "pyproject.toml"  # an impossible bound, so a gate must fail
    strict.write_text("[tool.chaos.gates]\nmin_baseline_silent_loss_runs = 100\n")
    out = tmp_path / "campaign"
    done = chaos_cli("campaign", "--targets", "resilience,dask-raw", "--grid",
                     "replicas=0;registry=memory;scatter=on", "--schedules", "2",
                     "--clean-runs", "1", "--kinds", "sigkill", "--no-cover",
                     "--gates", str(strict), "--out", str(out), *SMALL)
    assert done.returncode == 1, done.stdout + done.stderr
    for name in ("index.html", "summary.json", "gates.json", "campaign.log", "runs"):
        assert (out / name).exists(), f"{name} missing\n{done.stdout}\n{done.stderr}"
    assert f"report: {out / 'index.html'}" in done.stdout
    # 2 drawn schedules + the ci profile's regression one of these kinds (a sigkill of an
    # input holder; its coverage ones left out), and 1 fault-free run, on 2 configurations.
    assert "[8/8 runs]" in done.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["configurations"]) == {"resilience-r0-memory-scatter",
                                              "dask-raw-scatter"}
    assert summary["campaign"]["runs"] == summary["campaign"]["planned_runs"] == 8
    assert summary["campaign"]["aimed_at_every_cell"] is False  # --no-cover
    raw = summary["configurations"]["dask-raw-scatter"]
    assert raw["violations"]["lost"]["count"] >= 1  # sigkill, no protection: it loses

    gates = json.loads((out / "gates.json").read_text())
    assert gates["passed"] is False
    [aimed] = [g for g in gates["gates"] if g["name"] == "aimed_coverage"]
    assert aimed["status"] == "skip"
    [caught] = [g for g in gates["gates"] if g["name"] == "baseline_caught_losing"]
    assert caught["status"] == "fail" and caught["threshold"] == 100
    assert caught["excess"] == 100 - caught["measured"]
    assert "FAIL baseline_caught_losing:" in done.stdout and "off by" in done.stdout

    # The report's command for a failing baseline run replays it: same verdict class.
    [failing] = raw["failing"][:1]
    html = (out / "index.html").read_text(encoding="utf-8")
    command = next(line for line in html.split("<code class=\"cmd\">")[1:]
                   if failing["run_id"] in line).split("</code>")[0]
    assert command.startswith(f"python -m chaos replay {out}/runs/{failing['run_id']}/")
    assert "--workers 2 --timeout 20" in command
    replayed = chaos_cli(*command.split()[3:])
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr  # invalid, again
    assert "target dask-raw" in replayed.stdout and ", lost " in replayed.stdout


def test_usage_errors_exit_2_naming_the_value(tmp_path):
    done = chaos_cli("campaign", "--grid", "replicas=two", "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert "--grid replicas='two'" in done.stderr
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "file").write_text("x")
    done = chaos_cli("campaign", "--out", str(occupied))
    assert done.returncode == 2 and "is not empty" in done.stderr
