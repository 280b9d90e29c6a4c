"""The package's shape: no import cycles between modules, no module over 600 lines, no
function over 80 lines without a `# long: reason` comment.

Fast and model-free: it reads the sources with `ast` and imports nothing from `charter`.

The import graph has one node per module under `src/charter` (a package is its `__init__`) and
an edge for each module-level import. Imports inside functions are left out (they run later,
once the modules are loaded: that is how a needed back-reference is made lazy), and so are
those under `if TYPE_CHECKING:` (never run). Relative imports are resolved. `from pkg import
name` imports the module `pkg.name` when there is one, and reads `pkg` itself only when some
`name` is not a submodule. Importing `charter.x.y` also imports the packages `charter` and
`charter.x` first, except that a module's own enclosing packages are not counted as its
imports: Python has imported them before the module's body runs, so such an edge orders
nothing. That is why a package `__init__` that re-exports its own submodules is no cycle here,
without exempting any edge from `__init__`; a submodule that reads a name from its
half-initialized package (`from charter.x import name` inside `charter.x.y`, `name` not a
submodule) still closes a cycle and fails.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "charter"
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not in functions or classes' methods,
    not under `if TYPE_CHECKING:` (its `else:` branch does run)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level(block)
            for handler in node.handlers:
                yield from _module_level(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from _module_level(node.body)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules under `charter` that importing `name` imports first."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in _module_level(tree.body):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:
            # `from . import x` in a.b.c (module) is a.b; in package a.b (its __init__) too.
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join([*base, *([node.module] if node.module else [])])
        else:
            source = node.module or ""
        submodules = {f"{source}.{a.name}" for a in node.names} & modules.keys()
        targets.update(submodules)
        if len(submodules) < len(node.names):  # a name defined by `source` itself
            targets.add(source)
    own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    out: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            implied = i < len(parts)
            if prefix in modules and prefix != name and not (implied and prefix in own_packages):
                out.add(prefix)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return ", ".join(component) + "\n    " + "\n    ".join(edges)


def test_the_graph_sees_imports() -> None:
    graph = import_graph()
    assert "charter.cli" in graph and "charter.cli.bench" in graph["charter.cli"]
    assert "charter.errors" in graph["charter.backends"]


def test_the_rules_on_a_made_up_package(tmp_path: Path) -> None:
    files = {
        "p/__init__.py": "from p.a import f\n",
        "p/a.py": (
            "from typing import TYPE_CHECKING\n"
            "from . import b\n"
            "if TYPE_CHECKING:\n    from q import c\n"
            "def f():\n    from q import d\n"
        ),
        "p/b.py": "from p import f\n",  # reads a name of its half-initialized package
        "q/__init__.py": "",
        "q/c.py": "",
        "q/d.py": "import q.c\n",
        "r.py": "import q.c\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    modules = {_name(f): tmp_path / f for f in files}
    graph = {n: imports_of(n, path, modules) for n, path in modules.items()}
    assert graph == {
        "p": {"p.a"},
        "p.a": {"p.b"},  # not q.c (TYPE_CHECKING), not q.d (in a function), not p (its own)
        "p.b": {"p"},
        "q": set(),
        "q.c": set(),
        "q.d": {"q.c"},  # q, its own package, is imported before it
        "r": {"q", "q.c"},  # `import q.c` imports the package q first
    }
    assert cycles(graph) == [["p", "p.a", "p.b"]]


def _name(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d", "a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles (module-level imports):\n" + "\n".join(
        describe(c, graph) for c in found
    )


def test_no_module_over_600_lines() -> None:
    lines = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in all_modules().items()
    }
    long = {name: n for name, n in lines.items() if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(
        f"{name} ({n})" for name, n in sorted(long.items())
    )


MAX_FUNCTION_LINES = 80


def test_no_function_over_80_lines_without_a_reason() -> None:
    """A function over 80 lines says why in a `# long: ...` comment inside it."""
    unexplained = []
    for name, path in all_modules().items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                body = lines[node.lineno - 1 : node.end_lineno]
                if length > MAX_FUNCTION_LINES and not any(
                    line.strip().startswith("# long:") for line in body
                ):
                    unexplained.append(f"{name}.{node.name} ({length} lines)")
    assert not unexplained, (
        f"functions over {MAX_FUNCTION_LINES} lines without a `# long: reason` comment: "
        + ", ".join(sorted(unexplained))
    )
