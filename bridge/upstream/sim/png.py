"""A tiny PNG writer (stdlib zlib) for the simulated account's login QR code."""

from __future__ import annotations

import hashlib
import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def write_png(pixels: list[list[bool]], scale: int = 8) -> bytes:
    """A black-and-white PNG of a grid (True = black), each cell ``scale`` pixels wide."""
    size = len(pixels)
    rows = []
    for row in pixels:
        line = bytes(0 if dark else 255 for dark in row for _ in range(scale))
        rows.extend([b"\x00" + line] * scale)
    raw = b"".join(rows)
    ihdr = struct.pack(">IIBBBBB", size * scale, size * scale, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def qr_like(seed: str, modules: int = 25) -> list[list[bool]]:
    """A QR-looking grid: three finder patterns and seeded noise (not a scannable code)."""
    digest = hashlib.sha256(seed.encode()).digest()
    bits = "".join(f"{b:08b}" for b in digest * (modules * modules // 256 + 1))
    grid = [[bits[r * modules + c] == "1" for c in range(modules)] for r in range(modules)]
    for top, left in ((0, 0), (0, modules - 7), (modules - 7, 0)):
        for r in range(7):
            for c in range(7):
                ring = max(abs(r - 3), abs(c - 3))
                grid[top + r][left + c] = ring != 2
    # A quiet border around the code, as scanners expect.
    pad = [[False] * (modules + 8) for _ in range(4)]
    return pad + [[False] * 4 + row + [False] * 4 for row in grid] + pad
