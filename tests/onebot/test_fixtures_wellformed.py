"""The real-implementation OneBot fixtures are well formed.

Each file under tests/onebot/fixtures/ is a list of cases read from one implementation's source
(see the README there). This only checks the data's shape, so a broken or half-edited fixture fails
here with a clear message instead of as a puzzling failure in the table-driven inbound tests.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
IMPLEMENTATIONS = {
    "napcat.json": "NapNeko/NapCatQQ",
    "llonebot.json": "LLOneBot/LLOneBot",
    "lagrange.json": "LagrangeDev/Lagrange.Core",
    "gocqhttp.json": "Mrs4s/go-cqhttp",
}
REQUIRED = {"name", "source", "frame", "format", "notes"}
COMMIT = re.compile(r"[0-9a-f]{40}")


def _load(filename: str) -> list[dict[str, Any]]:
    data = msgspec.json.decode((FIXTURES / filename).read_bytes())
    assert isinstance(data, list) and data, f"{filename}: expected a non-empty list of cases"
    return data


@pytest.mark.parametrize("filename", sorted(IMPLEMENTATIONS))
def test_every_case_has_the_schema(filename: str) -> None:
    for case in _load(filename):
        name = case.get("name", "<unnamed>")
        assert case.keys() >= REQUIRED, f"{filename}:{name}: missing {REQUIRED - case.keys()}"
        assert isinstance(case["name"], str) and case["name"], f"{filename}: empty name"
        assert isinstance(case["notes"], str), f"{filename}:{name}: notes must be a string"
        source = case["source"]
        assert source.get("repo") == IMPLEMENTATIONS[filename], f"{filename}:{name}: repo"
        assert COMMIT.fullmatch(source.get("commit", "")), f"{filename}:{name}: commit not 40 hex"
        assert isinstance(source.get("file"), str) and source["file"], f"{filename}:{name}: file"
        assert source.get("lines") or source.get("symbol"), f"{filename}:{name}: lines or symbol"
        assert case["format"] in ("array", "string", None), f"{filename}:{name}: format"
        frame = case["frame"]
        if frame is None:
            # Behaviour that is not a frame (HTTP status at handshake, ignored binary frames).
            assert isinstance(case.get("transport"), dict), (
                f"{filename}:{name}: no frame, no transport"
            )
        else:
            assert isinstance(frame, dict), f"{filename}:{name}: frame must be a JSON object"


@pytest.mark.parametrize("filename", sorted(IMPLEMENTATIONS))
def test_names_are_unique_and_one_commit_per_file(filename: str) -> None:
    cases = _load(filename)
    dupes = [n for n, k in Counter(c["name"] for c in cases).items() if k > 1]
    assert not dupes, f"{filename}: duplicate names {dupes}"
    commits = {c["source"]["commit"] for c in cases}
    assert len(commits) == 1, f"{filename}: cases cite several commits {commits}"


@pytest.mark.parametrize("filename", sorted(IMPLEMENTATIONS))
def test_message_frames_match_their_format(filename: str) -> None:
    for case in _load(filename):
        frame, fmt = case["frame"], case["format"]
        if fmt is None or frame is None or "message" not in frame:
            continue
        want = list if fmt == "array" else str
        assert isinstance(frame["message"], want), f"{filename}:{case['name']}: message vs {fmt}"
        if "message_format" in frame:
            assert frame["message_format"] == fmt, f"{filename}:{case['name']}: message_format"


@pytest.mark.parametrize("filename", sorted(IMPLEMENTATIONS))
def test_pairs_hold_one_array_and_one_string_case(filename: str) -> None:
    pairs: dict[str, list[str]] = {}
    for case in _load(filename):
        if "pair" in case:
            pairs.setdefault(case["pair"], []).append(case["format"])
    for pair, formats in pairs.items():
        assert sorted(formats) == ["array", "string"], f"{filename}: pair {pair} has {formats}"
