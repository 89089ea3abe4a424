"""The harvester's imports run one way: no cycle, no lower layer reaching up, an independent emulator.

The graph is read from the source (``ast``), not from a running interpreter: every ``import``
counts wherever it is (a function-level import is still a dependency), except inside an
``if TYPE_CHECKING:`` block, which never runs. An edge goes to the module named (``from
harvester import plan`` is an edge to ``harvester.plan``); the packages above it are not
counted, as their ``__init__`` only names what they hold.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "harvester"

#: Lowest first. A module may import from its own layer and the layers below, never above.
#: Every module must be placed here: a new top-level module is a decision about its layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "harvester",
        "harvester.models",
        "harvester.errors",
        "harvester.config",
        "harvester.plan",
        "harvester.log",
        "harvester.progress",
    ),
    (
        "harvester.cloud",
        "harvester.archive",
        "harvester.logs",
        "harvester.report",
        "harvester.metrics",
        "harvester.emulator",
    ),
    ("harvester.engine",),
    ("harvester.app",),
    ("harvester.commands",),
    ("harvester.cli",),
)


def _module_name(path: Path) -> str:
    parts = ["harvester", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import below ``node``, at any depth, except in ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes_of(other)
            continue
        yield from _import_nodes_of(child)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _import_nodes(node)


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The harvester modules ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for named in targets:
            target = named
            while target and target not in known:  # harvester.x.attribute -> harvester.x
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _layer(module: str) -> int:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, names in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), index)
    if best is None:
        pytest.fail(f"{module} is in no layer: add it to LAYERS in {__name__}")
    return best[1]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_graph_is_read_from_the_source() -> None:
    """The reader sees real edges (function-level ones too), so the checks below can fail."""
    graph = _graph()
    assert "harvester.engine.core" in graph["harvester.engine.fetch"]
    assert "harvester.commands.run" in graph["harvester.cli"]  # imported inside dispatch()
    assert "harvester.plan" in graph["harvester.cloud.dcs"]  # ``from harvester import plan``
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle() -> None:
    """No module depends on itself through others: each can be read, and tested, bottom-up."""
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_layer_imports_a_higher_one() -> None:
    """cli -> commands -> app -> engine -> cloud/archive/logs -> plan/config/models/errors, never back."""
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_the_emulator_imports_nothing_of_the_client() -> None:
    """The emulator re-implements the wire contract on its own, so a bug on one side shows."""
    leaks = [
        f"{module} imports {target}"
        for module, targets in sorted(_graph().items())
        if module.startswith("harvester.emulator")
        for target in sorted(targets)
        if not target.startswith("harvester.emulator")
    ]
    assert leaks == []


def test_only_the_engine_pool_opens_task_groups() -> None:
    """One bounded worker pool (harvester/engine/pool.py) is the client's only task group."""
    found = [
        str(path.relative_to(ROOT))
        for path in sorted(ROOT.rglob("*.py"))
        if "create_task_group" in path.read_text(encoding="utf-8")
        and path.parts[len(ROOT.parts)] != "emulator"
    ]
    assert found == ["engine/pool.py"]
