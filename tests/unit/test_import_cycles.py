"""The app's modules import one another without cycles.

Every import counts, also one inside a function (a "lazy" import hides a cycle, it does not
remove it): a cycle means two modules that cannot be understood, tested or changed apart.
``from package import name`` imports the package's ``__init__`` unless every name is a
module of the package.  Importing ``a.b.c`` from outside package ``a.b`` runs ``a.b``'s
``__init__`` first (and every enclosing package's), so that counts as importing it too: a
package whose ``__init__`` re-exports its modules is part of every cycle through them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cdcrecon", "reconciliation", "gdpr")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    files = {
        module_name(p): p
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "migrations" not in p.parts
    }
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                submodules = [f"{base}.{alias.name}" for alias in node.names]
                # ``from package import module`` needs the module, not the package's names
                named = any(m not in files for m in submodules)
                targets = ([base] if named else []) + submodules
            targets += [p for t in targets for p in enclosing_packages(t) if not inside(name, p)]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def enclosing_packages(module: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``: the packages whose ``__init__`` run before it."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def inside(module: str, package: str) -> bool:
    """Whether ``module`` is ``package`` or one of its modules: its ``__init__`` has already
    begun when the module runs, so the module's own imports do not run it again."""
    return module == package or module.startswith(package + ".")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_importing_a_module_imports_its_package_init_first() -> None:
    graph = import_graph()
    # reconciliation.repair.policy imports reconciliation.ledger.reads: the ledger package's
    # __init__ runs first.
    assert "reconciliation.ledger" in graph["reconciliation.repair.policy"]
    # A module's own package has already begun: no edge back to it.
    assert "reconciliation.jobs" not in graph["reconciliation.jobs.runner"]


def test_no_module_of_the_app_imports_itself_through_others() -> None:
    graph = import_graph()
    assert "reconciliation.engine.core" in graph and graph["reconciliation.engine.core"]
    assert cycles(graph) == []
