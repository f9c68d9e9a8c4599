"""The import graph of a package, read with :mod:`ast`, and the cycles in it.

Every import counts: at the top, inside a function (a deferred import is still a dependency) and
under ``if TYPE_CHECKING:`` (a type is a dependency too: the layers point one way for readers
as for the interpreter). ``from a import b`` is an arrow to the module ``a.b`` when there is
one, else to ``a``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime(tree: ast.AST) -> ast.AST:
    """``tree`` without its ``if TYPE_CHECKING:`` blocks (what the interpreter imports)."""

    class Strip(ast.NodeTransformer):
        def visit_If(self, node: ast.If) -> ast.AST | None:
            return None if _type_checking(node) else self.generic_visit(node)

    return Strip().visit(tree)


def imported_modules(path: Path, runtime: bool = False) -> set[str]:
    """Every absolute module name a file imports (those of ``from x import y`` as ``x``);
    with ``runtime``, not those imported for type checking only."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in _imports(_runtime(tree) if runtime else tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif not node.level and node.module:
            names.add(node.module)
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package at ``root`` and the modules of the package it imports."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)
