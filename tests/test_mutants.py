"""The mutation judge's choice of tests (mutants/judge.py): only the tests that run the
mutated lines, and every test whenever that cannot be known; and the survivors argued
equivalent (mutants/equivalent.toml) still point at the lines they argue about."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from collections import Counter
from pathlib import Path

try:
    import tomllib
except ImportError:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("judge", ROOT / "mutants" / "judge.py")
assert spec is not None and spec.loader is not None
judge = importlib.util.module_from_spec(spec)
spec.loader.exec_module(judge)


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder,
                   check=True, capture_output=True)


def test_the_mutated_lines_are_read_from_the_working_tree_as_numbered_before(tmp_path):
    module = tmp_path / "resilience" / "loop.py"
    module.parent.mkdir()
    module.write_text("".join(f"line{i} = {i}\n" for i in range(1, 11)))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "library")
    assert judge.mutated_lines(tmp_path) == {}
    module.write_text(module.read_text().replace("line7 = 7", "line7 = 8"))  # as cosmic-ray
    assert judge.mutated_lines(tmp_path) == {"resilience/loop.py": {7}}


def test_a_mutant_gets_the_tests_that_run_its_line_and_every_test_when_unsure(tmp_path):
    coverage = tmp_path / "map.json"
    coverage.write_text(json.dumps({"resilience/loop.py": {
        "7": ["tests/resilience/test_a.py::test_one", "tests/resilience/test_b.py::test_two"],
        "8": ["tests/resilience/test_b.py::test_two"],
        "2": [],  # run only while the module was imported
    }}))
    chosen = judge.tests_for({"resilience/loop.py": {7, 8}}, coverage)
    assert chosen == ["tests/resilience/test_a.py::test_one",
                      "tests/resilience/test_b.py::test_two"]
    everything = judge.FAST_TESTS
    assert judge.tests_for({"resilience/loop.py": {2}}, coverage) == everything
    assert judge.tests_for({"resilience/loop.py": {9}}, coverage) == everything  # a worker's
    assert judge.tests_for({"resilience/loop.py": {7}}, tmp_path / "none.json") == everything
    assert judge.tests_for(None, coverage) == everything


def test_every_equivalent_mutant_names_a_line_that_still_reads_as_argued():
    # The score matches survivors by line number: an edit above a listed line moves it,
    # and the argument would silently cover whatever mutant lands there instead.
    entries = tomllib.loads((ROOT / "mutants" / "equivalent.toml").read_text())["equivalent"]
    moved = []
    for entry in entries:
        lines = (ROOT / "resilience" / entry["module"]).read_text().splitlines()
        found = lines[entry["line"] - 1].strip() if entry["line"] <= len(lines) else None
        if found != entry["code"]:
            now = [n for n, line in enumerate(lines, 1) if line.strip() == entry["code"]]
            moved.append(f"{entry['module']}:{entry['line']} reads {found!r}, not "
                         f"{entry['code']!r} (now at line(s) {now or 'none'})")
    assert entries and not moved, "\n".join(moved)
    argued = Counter((e["module"], e["line"], e["operator"]) for e in entries)
    assert not [a for a, n in argued.items() if n > 1], "a mutant argued twice"


LIBRARY_TESTS = '''
from pathlib import Path

HERE = Path(__file__).parent


def test_steady():
    with open(HERE / "steady-runs", "a") as runs:
        runs.write("ran\\n")


def test_fails_the_first_time():
    mark = HERE / "failed-once"
    if {broken} or not mark.exists():
        mark.touch()
        raise AssertionError("failed")
'''


def test_the_unmutated_librarys_tests_are_run_again_when_one_fails(tmp_path):
    # Before judging, the fast tests run once on the library as it is: a test failing
    # there would kill every mutant it judges. One that fails, then passes alone, is a
    # flake (judging goes on, with a warning); one that fails twice stops the session.
    def run(broken: bool) -> tuple[str, int]:
        folder = tmp_path / f"broken-{broken}"
        folder.mkdir()
        (folder / "test_library.py").write_text(LIBRARY_TESTS.format(broken=broken))
        outcome = judge.pytest_twice(["test_library.py"], folder / "cache", cwd=folder)
        return outcome, len((folder / "steady-runs").read_text().splitlines())

    assert run(broken=False) == ("flaky", 1)  # only the failed test ran again
    assert run(broken=True) == ("failed", 1)
    steady = tmp_path / "steady"
    steady.mkdir()
    (steady / "test_library.py").write_text("def test_fine():\n    pass\n")
    assert judge.pytest_twice(["test_library.py"], steady / "cache", cwd=steady) == "passed"
