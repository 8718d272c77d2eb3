"""The JSON bytes of Mojo::JSON (reference/openqq-spec.md §1.3).

Compact, keys sorted, raw UTF-8, ``/`` written ``\\/``, control characters as ``\\u00XX``
with upper-case hex. The bus already carries compact sorted UTF-8 (bridge.core.codec), so
legacy bytes are the bus bytes plus two rewrites.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.core.codec import encode

# A \u00xx escape preceded by an even number of backslashes (so not a literal "\\u00xx").
_CONTROL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u00([0-9a-f]{2})")


def legacy(body: bytes) -> bytes:
    """Rewrite compact sorted JSON into the Openqq byte format."""
    # '/' can only occur inside JSON strings, so a plain replace is exact.
    out = body.replace(b"/", b"\\/")
    if b"\\u00" in out:
        out = _CONTROL.sub(lambda m: m.group(1) + b"\\u00" + m.group(2).upper(), out)
    return out


def dumps(obj: Any) -> bytes:
    """Encode an object in the Openqq byte format."""
    return legacy(encode(obj))
