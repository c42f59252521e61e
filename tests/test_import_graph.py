"""Static checks on the package source, with ``ast`` only (nothing is imported):

- the import graph of ``geoseg`` (module-level and function-level imports alike) has no cycle;
- no module reaches into private APIs of other libraries (``keras.src``, ``tensorflow.python``,
  argparse's private names such as ``parser._actions``);
- no module is over ``MAX_LINES`` lines (one concept per module).

Imports under ``if TYPE_CHECKING:`` never run and are left out of the graph. An import of
``a.b.c`` is an edge to the most specific module of the package it names (``from a.b import c``
is an edge to ``a.b.c`` when that is a module, else to ``a.b``); parent packages that Python
initializes on the way are not edges, so the usual "package ``__init__`` re-exports its
submodules" pattern is not a cycle, while a submodule importing its own package's ``__init__`` is.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "geoseg"
MAX_LINES = 450
FORBIDDEN_PREFIXES = ("keras.src", "tensorflow.python")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _imported_names(module: str, path: Path, tree: ast.AST) -> list[tuple[str, int]]:
    """Absolute dotted names imported by a module, with their line: ``a.b`` for ``import a.b``,
    ``a.b.c`` for ``from a.b import c``; relative imports resolved against the module's package."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    names = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.append((base, node.lineno))
            names += [(f"{base}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*"]
    return names


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set()
        for name, _ in _imported_names(module, path, tree):
            if name != "geoseg" and not name.startswith("geoseg."):
                continue
            # `from a.b import c`: c is a module -> edge to a.b.c; else c is a name in a.b -> edge to a.b.
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                targets.add(name)
        # `from a.b import c` also yields a.b itself; keep it only when nothing more specific was hit.
        graph[module] = {t for t in targets if not any(o != t and o.startswith(t + ".") for o in targets)} - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path a -> ... -> a) per strongly connected component of size > 1 (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, set(comp), comp[0]) for comp in comps]


def _one_cycle(graph: dict[str, set[str]], comp: set[str], start: str) -> list[str]:
    """A shortest path start -> ... -> start inside one component (breadth first)."""
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_has_no_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


_ARGPARSE_PRIVATE = sorted(
    {n for n in dir(argparse.ArgumentParser()) if n.startswith("_") and not n.startswith("__")}
    | {n for n in dir(argparse) if n.startswith("_") and not n.startswith("__")}
)


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _private_uses(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    flagged_lines = set()
    for name, line in _imported_names(module, path, tree):  # `from a.b import c` gives a.b then a.b.c
        private = name.startswith("argparse._") or any(name == p or name.startswith(f"{p}.")
                                                        for p in FORBIDDEN_PREFIXES)
        if private and line not in flagged_lines:
            flagged_lines.add(line)
            found.append(f"{_where(path)}:{line}: imports {name}")
    uses_argparse = any(n == "argparse" or n.startswith("argparse.") for n, _ in _imported_names(module, path, tree))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        dotted = ast.unparse(node)
        if any(dotted == p or dotted.startswith(p + ".") for p in FORBIDDEN_PREFIXES) or \
                any(f"{lib}.src." in dotted or f"{lib}.python." in dotted for lib in ("keras", "tf", "tensorflow")):
            found.append(f"{_where(path)}:{node.lineno}: uses {dotted}")
        elif uses_argparse and node.attr in _ARGPARSE_PRIVATE:
            found.append(f"{_where(path)}:{node.lineno}: argparse private {dotted}")
    return sorted(set(found))


def test_private_apis_detector_sees_them(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import argparse\nfrom keras.src.layers import Dense\nimport tensorflow as tf\n"
                   "def f(p: argparse.ArgumentParser):\n    x = tf.python.ops\n    return p._actions\n")
    found = _private_uses(bad, "bad")
    assert len(found) == 3 and "keras.src.layers" in found[0], found


def test_no_private_apis_of_other_libraries():
    found = [hit for module, path in MODULES.items() for hit in _private_uses(path, module)]
    assert not found, "private APIs of other libraries:\n" + "\n".join("  " + f for f in found)


@pytest.mark.parametrize("limit", [MAX_LINES])
def test_modules_are_short(limit):
    long = sorted((len(p.read_text().splitlines()), str(p.relative_to(ROOT))) for p in MODULES.values())
    over = [f"  {path}: {n} lines" for n, path in long if n > limit]
    assert not over, f"modules over {limit} lines:\n" + "\n".join(over)
