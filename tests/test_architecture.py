"""The architecture's rules, read from the source: no import circles, no Qt outside ``gui/``,
no oversized files where they tend to grow, and an engine process that never loads the GUI.

The imports are read with ``ast`` rather than by importing, so that every import counts: those
at module level, inside functions (the lazy ones), and under ``if TYPE_CHECKING:``, which still
ties two modules to each other even where Python would not run it.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xraystudio"
#: Top-level names of Qt and of the Qt libraries built on it.
QT_PACKAGES = frozenset({
    "PySide6", "PySide2", "PyQt6", "PyQt5", "shiboken6", "shiboken2", "qtpy", "superqt",
    "pyqtgraph", "qtawesome", "pytestqt",
})
#: Folders whose files must stay small enough to read whole.
SIZE_LIMITED = ("gui", "curation")
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported_names(module: str, path: Path) -> Iterable[tuple[str, int]]:
    """Every absolute dotted name ``module`` imports (``from a import b`` gives ``a.b`` and
    ``a``), with its line, wherever the import statement stands."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # "from . import x" in a package's __init__ is relative to the package itself.
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            yield source, node.lineno
            for alias in node.names:
                yield f"{source}.{alias.name}", node.lineno


def _import_graph() -> dict[str, dict[str, int]]:
    """module -> {xraystudio module it imports: line of the first such import}."""
    modules = _modules()
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        for name, line in _imported_names(module, path):
            # "import a.b.c" loads a.b.c; "from a.b import c" loads a.b.c if it is a module,
            # else a.b: the longest prefix that is a module of the package is what gets loaded.
            parts = name.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            target = ".".join(parts)
            if target and target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def _external_imports(path: Path) -> Iterable[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module, node.lineno


def _strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's components with more than one module: each is one knot of import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    knots: list[list[str]] = []

    def visit(root: str) -> None:
        # Iterative, so a deep chain of imports cannot hit the recursion limit.
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                knot = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    knot.append(member)
                    if member == node:
                        break
                if len(knot) > 1:
                    knots.append(sorted(knot))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(knots)


def _shortest_path(graph: dict[str, dict[str, int]], start: str, goal: str,
                   within: set[str] | None = None) -> list[str] | None:
    """The fewest imports that lead from ``start`` to ``goal`` (both ends included)."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if within is not None and child not in within:
                continue
            if child == goal:
                path = [child, node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    return None


def import_circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One shortest circle through each module of each knot, without repeats: enough to name
    every import that has to go, in the order a reader follows them."""
    circles: list[list[str]] = []
    seen: set[frozenset[tuple[str, str]]] = set()
    for knot in _strongly_connected(graph):
        members = set(knot)
        for module in knot:
            path = _shortest_path(graph, module, module, members)
            assert path is not None  # every module of a knot lies on a circle
            edges = frozenset(zip(path, path[1:]))
            if edges not in seen:
                seen.add(edges)
                circles.append(path)
    return circles


def _describe(graph: dict[str, dict[str, int]], path: list[str]) -> str:
    """``a:12 -> b:40 -> a``: each module with the line of its import of the next."""
    return " -> ".join(f"{a}:{graph[a][b]}" for a, b in zip(path, path[1:])) + f" -> {path[-1]}"


def test_no_import_circles():
    graph = _import_graph()
    circles = import_circles(graph)
    assert not circles, "import circles:\n" + "\n".join(_describe(graph, c) for c in circles)


def test_the_circle_check_sees_a_circle():
    """The check itself: a circle made of a module-level and a lazy import is found."""
    graph = {
        "a": {"b": 1},
        "b": {"c": 3},  # b imports c inside a function: still an edge
        "c": {"a": 7, "d": 2},
        "d": {},
    }
    assert import_circles(graph) == [["a", "b", "c", "a"]]
    assert import_circles({"a": {"b": 1}, "b": {}}) == []


def test_relative_and_lazy_imports_are_read(tmp_path):
    """Relative imports resolve against the module (or the package of an ``__init__``) and
    imports inside functions count."""
    src = tmp_path / "m.py"
    src.write_text("from . import x\nfrom ..y import z\n\ndef f():\n    import q.r\n")
    names = {n for n, _ in _imported_names("pkg.sub.m", src)}
    assert {"pkg.sub", "pkg.sub.x", "pkg.y", "pkg.y.z", "q.r"} <= names
    init = tmp_path / "__init__.py"
    init.write_text("from .m import f\n")
    assert "pkg.sub.m.f" in {n for n, _ in _imported_names("pkg.sub", init)}


def test_core_imports_no_qt():
    """Outside ``xraystudio/gui/`` nothing imports Qt: the core must run headless (CLI, the
    engine process, a cluster worker) without a Qt installation."""
    offenders = []
    for module, path in _modules().items():
        if _in(module, "xraystudio.gui"):
            continue
        for name, line in _external_imports(path):
            if name.split(".")[0] in QT_PACKAGES:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not offenders, "Qt imported outside xraystudio/gui/:\n" + "\n".join(offenders)


def test_core_never_imports_the_gui():
    """Nothing imports upward: only the command line (which launches the window) may import
    ``xraystudio.gui``; the core below it must not, even lazily."""
    graph = _import_graph()
    offenders = [
        f"{module}:{line} imports {target}"
        for module, edges in sorted(graph.items())
        if not _in(module, "xraystudio.gui", "xraystudio.cli", "xraystudio.__main__")
        for target, line in sorted(edges.items())
        if _in(target, "xraystudio.gui")
    ]
    assert not offenders, "the core imports the GUI:\n" + "\n".join(offenders)


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_files_stay_small():
    """A file over 600 lines in ``gui/`` or ``curation/`` is doing more than one job."""
    large = []
    for folder in SIZE_LIMITED:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                large.append(f"{path.relative_to(PACKAGE.parent)}: {lines} lines")
    assert not large, f"files over {MAX_LINES} lines:\n" + "\n".join(large)


def test_engine_never_loads_the_gui():
    """The engine's child process loads only the engine's imports: none of them, directly or
    through others, may reach ``xraystudio.gui`` (which would pull Qt into the torch process)."""
    if not (PACKAGE / "engine").is_dir():
        pytest.skip("no xraystudio/engine package yet")
    graph = _import_graph()
    offenders = []
    for module in sorted(m for m in graph if _in(m, "xraystudio.engine")):
        for gui in sorted(m for m in graph if _in(m, "xraystudio.gui")):
            path = _shortest_path(graph, module, gui)
            if path is not None:
                offenders.append(_describe(graph, path))
                break
    assert not offenders, "the engine reaches the GUI:\n" + "\n".join(offenders)
