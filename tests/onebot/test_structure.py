"""The OneBot upstream's modules import each other in one direction only (no cycles)."""

from __future__ import annotations

import bridge.upstream.onebot as pkg
from tests.structure import assert_one_direction

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
    assert_one_direction(pkg, ORDER)
