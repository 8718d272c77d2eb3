"""A check shared by the structure tests: a package's modules import in one direction only."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType


def assert_one_direction(pkg: ModuleType, order: list[str]) -> None:
    """Every module of ``pkg`` is in ``order`` and imports only modules listed before it."""
    root = Path(pkg.__file__ or "").parent
    prefix = pkg.__name__
    found = {p.stem for p in root.glob("*.py")} - {"__init__"}
    assert found == set(order), "list every module in ORDER"
    for name in order:
        tree = ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))
        imported = {
            node.module.rsplit(".", 1)[1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith(prefix + ".")
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == prefix
            for alias in node.names
        }
        later = imported - set(order[: order.index(name)])
        assert not later, f"{name} imports {later}, which come after it"
