"""The project's own checks, as part of the test suite: ruff (lint, format) and mypy strict."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = ("src", "tests", "benchmarks", "examples", "setup.py")


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", *CODE),
        ("ruff", "format", "--check", *CODE),
        ("mypy",),  # strict on src/, as pyproject.toml says
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_check_passes(command: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


SRC = ROOT / "src"


def _module_of(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of `known` an import in `tree` (at any depth: in a function too) runs,
    but not in an `if TYPE_CHECKING:` block, which never runs."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known}


def _import_graph() -> dict[str, set[str]]:
    """Which hooktel modules importing each one runs first: those it imports, and their
    packages (except its own: a package's modules run while it is being imported)."""
    paths = {_module_of(path): path for path in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        imported = _imported(
            ast.parse(path.read_text()), module, path.name == "__init__.py", set(paths)
        )
        own = {module.rsplit(".", depth)[0] for depth in range(1, module.count(".") + 1)}
        runs = set()
        for target in imported:
            parts = target.split(".")
            runs |= {".".join(parts[:end]) for end in range(1, len(parts) + 1)}
        graph[module] = runs - own - {module}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles_in_src() -> None:
    """No module of src/ imports, at import time or later in a function, a module whose
    imports lead back to it: each layer depends only on those below it."""
    assert _circles(_import_graph()) == []


def test_the_circle_check_finds_a_circle() -> None:
    graph = _import_graph()
    assert "hooktel.otel.spans.server" in graph["hooktel.otel"]  # a function-level import
    graph["hooktel._http.request"] = {*graph["hooktel._http.request"], "hooktel.otel"}
    assert any("hooktel._http.request" in circle for circle in _circles(graph))
