"""The Openqq text form of OneBot segments, as Mojo::Webqq shows a message's content.

``content_of`` renders segments as Openqq text: text as it is, faces by name (``[微笑]``, else
``[表情]``), mentions as ``@name ``, media and other rich pieces as placeholders (``[图片]``,
``[语音]``, ...), quotes (``reply``) left out. The OneBot upstream renders what it receives with
it and the OneBot face renders what a bot sends, so both directions read the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.core.events import Segment
from bridge.core.faces import FACES

PLACEHOLDERS = {
    "image": "[图片]",
    "record": "[语音]",
    "video": "[视频]",
    "file": "[文件]",
    "json": "[分享]",
    "xml": "[分享]",
    "share": "[分享]",
    "forward": "[合并转发]",
    "location": "[位置]",
    "music": "[音乐]",
    "dice": "[骰子]",
    "rps": "[猜拳]",
    "poke": "[戳一戳]",
    "mface": "[表情]",
    "markdown": "[未识别内容]",
}


def parse_int(value: Any) -> int | None:
    """An integer from a JSON number or a decimal string (not a boolean); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def as_int(value: Any, default: int = 0) -> int:
    """An integer from a JSON number or a numeric string; ``default`` otherwise."""
    parsed = parse_int(value)
    return default if parsed is None else parsed


def as_str(value: Any) -> str:
    """A string, or "" for null."""
    return "" if value is None else str(value)


def content_of(segments: list[Segment], name_of: Callable[[str], str] = lambda q: q) -> str:
    """The Openqq text form of a message (``name_of``: the name to show for a QQ number)."""
    parts: list[str] = []
    for seg in segments:
        d = seg.data
        if seg.type == "text":
            parts.append(as_str(d.get("text")).replace("\r\n", "\n"))
        elif seg.type == "face":
            name = FACES.get(as_int(d.get("id"), -1))
            parts.append(f"[{name}]" if name else "[表情]")
        elif seg.type == "at":
            qq = as_str(d.get("qq"))
            parts.append(
                "@全体成员 " if qq == "all" else f"@{as_str(d.get('name')) or name_of(qq)} "
            )
        elif seg.type == "reply":
            continue
        else:
            parts.append(PLACEHOLDERS.get(seg.type, "[未识别内容]"))
    return "".join(parts)
