"""`python -m chaos check-protocols`: the check for people who do not use pytest."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from chaos.cli import main as chaos_main
from chaos.testing.command import main

USER_MODULE = '''
import random
from pathlib import Path

START = "pose"

def start_pose():
    return "pose"

def fold(pose, *, seed, **kwargs):
    return f"{pose}|{random.Random(seed).random():.6f}"

def write_decoy(pose, *, task_id, **kwargs):
    Path("decoy.pdb").write_text(f"MODEL {task_id}\\n")
    return pose
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A folder with a user's module (a name of its own per test) and tasks.json."""
    name = f"user_protocols_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / "tasks.json").write_text(json.dumps([{"task_id": i, "seed": i}
                                                     for i in range(3)]))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_an_unsafe_chain_prints_the_findings_and_exits_1(
        project: str, chaos_client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check-protocols", f"{project}:fold,write_decoy", "--tasks", "tasks.json",
                   "--input", f"{project}:start_pose", "--kills", "0", "--seed", "4",
                   "--scheduler", chaos_client.scheduler.address])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "[side-effect] protocol write_decoy, step 1: it changed files" in out
    assert "task 0: it created decoy.pdb (8 bytes)" in out
    assert (f"replay: python -m chaos check-protocols {project}:fold,write_decoy --tasks "
            f"tasks.json --input {project}:start_pose --kills 0 --seed 4") in out


def test_a_safe_chain_exits_0(project: str, chaos_client: Any,
                              capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check-protocols", f"{project}:fold", "--tasks", "tasks.json", "--input",
                   f"{project}:START", "--kills", "0", "--scheduler",
                   chaos_client.scheduler.address])
    assert status == 0
    assert "safe to restart" in capsys.readouterr().out


@pytest.mark.parametrize(("chain", "tasks", "message"), [
    ("{m}:fold,nothing", "[{}]", "module {m} has no function 'nothing'"),
    ("fold", "[{}]", "name the protocols as MODULE:FUNC[,FUNC...]"),
    ("no_such_module:fold", "[{}]", "cannot import 'no_such_module'"),
    ("{m}:fold", "{not json", "is not JSON"),
    ("{m}:fold", '{"task_id": 0}', "holds dict, not a list of objects"),
    ("{m}:fold", "[]", "tasks is empty"),
])
def test_bad_arguments_exit_2_with_the_rule_and_the_fix(
        project: str, capsys: pytest.CaptureFixture[str], chain: str, tasks: str,
        message: str) -> None:
    Path("bad.json").write_text(tasks)
    status = main(["check-protocols", chain.format(m=project), "--tasks", "bad.json"])
    assert status == 2
    assert message.format(m=project) in capsys.readouterr().err


def test_the_chaos_command_line_has_the_subcommand(project: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert chaos_main(["check-protocols", f"{project}:fold", "--tasks", "missing.json"]) == 2
    assert "--tasks 'missing.json': cannot read it" in capsys.readouterr().err


def test_python_dash_m_chaos_runs_it_on_a_cluster_of_its_own(project: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "check-protocols", f"{project}:fold,write_decoy",
         "--tasks", "tasks.json", "--kills", "1"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "[side-effect] protocol write_decoy, step 1" in done.stdout
    assert "SIGKILL aimed at 1 step" in done.stdout
