"""The one-way layout, checked from the source: no import cycles, no edge against the flow.

The import graph of `resilience/`, `chaos/`, `reports/` and `experiments/` is read with
`ast` (nothing is imported), including imports inside functions: a lazy import is no
way around a cycle. Each module belongs to a *unit* (a package of `chaos/`, or a
top-level package), and a unit may import only the units `ALLOWED` lists for it: the
table of docs/ARCHITECTURE.md. A second test injects a back-edge into a copy of the
tree and checks that both rules catch it, so this check is known to be able to fail.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("resilience", "chaos", "reports", "experiments")

_HARNESS_INPUTS = {"chaos.errors", "chaos.spec", "chaos.history", "chaos.probes",
                   "chaos.workload"}
_CHAOS_LIBRARY = _HARNESS_INPUTS | {"chaos.judge", "chaos.harness", "chaos.analysis",
                                    "chaos.campaign", "chaos.testing"}
# unit -> the units it may import (besides itself). The flow of docs/ARCHITECTURE.md.
ALLOWED: dict[str, set[str]] = {
    "resilience": set(),
    "chaos.errors": set(),
    "chaos.spec": {"chaos.errors"},
    "chaos.history": {"chaos.errors", "chaos.spec"},
    "chaos.probes": {"chaos.errors", "chaos.spec"},
    "chaos.workload": {"chaos.errors", "chaos.spec", "chaos.probes"},
    "chaos.judge": {"chaos.errors", "chaos.spec", "chaos.history"},
    "chaos.harness": _HARNESS_INPUTS | {"resilience"},
    "chaos.analysis": {"chaos.errors", "chaos.spec", "chaos.history", "chaos.judge",
                       "chaos.workload"},
    "chaos.campaign": _HARNESS_INPUTS | {"chaos.judge", "chaos.harness", "chaos.analysis"},
    "chaos.testing": _HARNESS_INPUTS | {"chaos.harness", "resilience"},
    "chaos": _CHAOS_LIBRARY,  # the facade: chaos/__init__.py
    "chaos.cli": _CHAOS_LIBRARY | {"chaos", "reports", "resilience"},
    "reports": {"chaos.errors", "chaos.spec", "chaos.history", "chaos.judge",
                "chaos.analysis"},
    "experiments": _CHAOS_LIBRARY | {"chaos", "resilience", "reports"},
}


def test_no_import_cycle_and_no_edge_against_the_flow() -> None:
    graph = import_graph(ROOT)
    assert len(graph) > 50, "the layout check found too few modules to mean anything"
    assert not forbidden_edges(graph), "\n".join(forbidden_edges(graph))
    assert not cycles(graph), "import cycles:\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles(graph))


def test_the_check_catches_a_back_edge(tmp_path: Path) -> None:
    for package in PACKAGES:
        if (ROOT / package).is_dir():
            shutil.copytree(ROOT / package, tmp_path / package)
    checker = tmp_path / "chaos" / "judge" / "checker.py"
    checker.write_text(checker.read_text() + "\nfrom chaos.campaign import plan_campaign\n")
    spec = tmp_path / "chaos" / "spec" / "schedule.py"
    spec.write_text(spec.read_text() + "\n\ndef _late():\n    from chaos.spec import Fault\n")
    graph = import_graph(tmp_path)
    assert any("chaos.judge.checker -> chaos.campaign" in e for e in forbidden_edges(graph))
    assert any("chaos.spec.schedule" in cycle and "chaos.spec" in cycle
               for cycle in cycles(graph))


def test_the_plain_packages_do_not_import_dask() -> None:
    code = ("import sys, chaos, chaos.spec, chaos.history, chaos.judge, chaos.workload; "
            "heavy = sorted({'distributed', 'dask', 'pandas', 'hypothesis'} & set(sys.modules)); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"importing them imported {done.stdout}{done.stderr}"


# ---------------------------------------------------------------------------- the graph


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in its source."""
    modules = dict(_modules(root))
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(name, path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def unit(module: str) -> str:
    """The unit a module belongs to: `chaos.<package>`, or its top-level package."""
    parts = module.split(".")
    if parts[0] != "chaos":
        return parts[0]
    if len(parts) == 1:
        return "chaos"
    return "chaos.cli" if parts[1] == "__main__" else f"chaos.{parts[1]}"


def forbidden_edges(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for source, targets in sorted(graph.items()):
        allowed = ALLOWED.get(unit(source))
        if allowed is None:
            found.append(f"{source}: its unit {unit(source)} is not in ALLOWED; add it there "
                         "and to docs/ARCHITECTURE.md")
            continue
        for target in sorted(targets):
            if unit(target) != unit(source) and unit(target) not in allowed:
                found.append(f"{source} -> {target}: {unit(source)} may import only "
                             f"{sorted(allowed) or 'nothing of the project'}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _modules(root: Path) -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def _imports(module: str, path: Path) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import name`: the module pkg.name when there is one, else pkg.
            yield from (f"{base}.{alias.name}" for alias in node.names)
