"""The code's structure, as assertions: what may import what.

* ``core/`` is a library: its modules import each other without a cycle (module-level
  and lazy in-function imports alike: a lazy import hides a cycle from Python's import
  machinery, not from the reader), and nothing in it imports Streamlit.
* The server's runtime singletons (the worker pool, the job registry, the training
  slots) are reached by app.py and the pages only through ``ui/runtime.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package: str) -> dict[str, Path]:
    """Every module of ``package`` (a folder of the repo, subpackages included) by name."""
    return {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def imported_names(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names) of every import statement in the file, anywhere in it (inside
    functions too); relative imports resolved against the file's package."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, tuple(a.name for a in node.names)))
    return out


def import_graph(package: str) -> dict[str, set[str]]:
    """Module → the modules of the same package it imports. ``from core import x`` is
    an edge to ``core.x`` when x is a module, else to ``core`` (the package's
    ``__init__``)."""
    modules = package_modules(package)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for base, names in imported_names(path):
            targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in modules]
            if len(targets) < len(names) or not names:
                targets.append(base)
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path [a, b, …, a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_core_modules_import_each_other_without_a_cycle():
    cycle = find_cycle(import_graph("core"))
    assert cycle is None, "import cycle in core/: " + " -> ".join(cycle)


def test_the_import_graph_holds_lazy_imports_and_the_cycle_finder_finds_cycles():
    graph = import_graph("core")
    assert "core.worker" in graph["core.jobs"]        # inside TrainingJob._train_in_process
    assert "core.train" in graph["core.worker"]       # inside _child_main
    assert {"core.bptt", "core.native"} <= graph["core.train"]  # from core import bptt, native
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_never_imports_streamlit():
    offenders = [f"{name}: {base}" for name, path in package_modules("core").items()
                 for base, _ in imported_names(path)
                 if base.split(".")[0] == "streamlit"]
    assert not offenders, f"core/ imports Streamlit: {offenders}"


SINGLETONS = {"POOL", "GLOBAL_REGISTRY", "GLOBAL_SLOTS"}
SINGLETON_MODULES = {"core.worker", "core.jobs"}


def test_pages_and_app_reach_the_runtime_singletons_through_ui_runtime():
    front = [*sorted((ROOT / "pages").glob("*.py")), ROOT / "app.py"]
    offenders = [f"{p.relative_to(ROOT)}: {base} {names}" for p in front
                 for base, names in imported_names(p)
                 if base in SINGLETON_MODULES or SINGLETONS & set(names)]
    assert not offenders, f"pages/app.py import the runtime singletons: {offenders}"
    holders = sorted(p.name for p in (ROOT / "ui").glob("*.py")
                     if any(SINGLETONS & set(names) for _, names in imported_names(p)))
    assert holders == ["runtime.py"], f"ui/ modules holding the singletons: {holders}"
