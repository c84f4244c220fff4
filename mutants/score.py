"""The mutation score of a `nox -s mutants` session, and every surviving mutant.

Score = killed / (killed + survived - equivalent), over the mutants judged (skipped and
incompetent ones aside). A survivor listed in mutants/equivalent.toml (by module, line,
operator, and occurrence where one operator makes several mutants of a line; with the
one-line argument why it cannot change behaviour) is counted as equivalent; every other
survivor is printed with its diff: it needs a test that kills it.

    python mutants/score.py build/mutants.sqlite
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome

EQUIVALENT = Path(__file__).with_name("equivalent.toml")


def main(argv: list[str]) -> int:
    known = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8")).get("equivalent", [])
    # An entry without an occurrence covers every mutant of its operator on its line.
    why = {(e["module"], int(e["line"]), e["operator"], e.get("occurrence")): e["why"]
           for e in known}
    killed = survived = incompetent = 0
    survivors, equivalent = [], []
    with use_db(argv[0], WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome != WorkerOutcome.NORMAL:
                continue
            mutation = item.mutations[0]
            where = (mutation.module_path.name, mutation.start_pos[0], mutation.operator_name)
            argument = why.get((*where, mutation.occurrence), why.get((*where, None)))
            if result.test_outcome == TestOutcome.KILLED:
                killed += 1
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                incompetent += 1
            elif argument is not None:
                equivalent.append((where, argument))
            else:
                survived += 1
                survivors.append((where, result.diff or ""))
    judged = killed + survived
    score = killed / judged if judged else float("nan")
    print(f"mutants judged: {killed + survived + len(equivalent)} (+{incompetent} incompetent)")
    print(f"killed {killed}, survived {survived}, equivalent {len(equivalent)}")
    print(f"mutation score: {score:.1%} of non-equivalent mutants killed")
    for (module, line, operator), argument in equivalent:
        print(f"  equivalent {module}:{line} {operator}: {argument}")
    for (module, line, operator), diff in survivors:
        print(f"  SURVIVED {module}:{line} {operator}\n" + "\n".join(
            "      " + text for text in diff.splitlines() if text.startswith(("+", "-"))
            and not text.startswith(("+++", "---"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
