"""The OneBot upstream's modules import each other in one direction only (no cycles)."""

from __future__ import annotations

import ast
from pathlib import Path

import bridge.upstream.onebot as pkg

#: Each module may import only modules listed before it.
ORDER = [
    "errors",
    "settings",
    "frames",
    "faces",
    "translate",
    "book",
    "inbound",
    "connection",
    "account",
]


def test_modules_import_in_one_direction():
    root = Path(pkg.__file__).parent
    found = {p.stem for p in root.glob("*.py")} - {"__init__"}
    assert found == set(ORDER), "list every module in ORDER"
    for name in ORDER:
        tree = ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))
        imported = {
            node.module.rsplit(".", 1)[1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("bridge.upstream.onebot.")
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "bridge.upstream.onebot"
            for alias in node.names
        }
        later = imported - set(ORDER[: ORDER.index(name)])
        assert not later, f"{name} imports {later}, which come after it"
