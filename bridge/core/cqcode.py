"""CQ code: the OneBot v11 string form of a message (``message/string.md``), both ways.

Pure functions over :class:`bridge.core.events.Segment`: ``encode`` renders segments as the
``raw_message`` string (text escaped, ``[CQ:type,key=value]`` for the rest), ``decode`` parses a
string message back into segments. Escapes: ``&`` ``&amp;``, ``[`` ``&#91;``, ``]`` ``&#93;``
everywhere, and ``,`` ``&#44;`` inside parameters.
"""

from __future__ import annotations

import re

from bridge.core.events import Scalar, Segment

_CQ = re.compile(r"\[CQ:([a-zA-Z0-9_.-]+)((?:,[^,\]]*)*)\]")


def escape(text: str, *, in_param: bool = False) -> str:
    """Text as it stands in a CQ string (``in_param``: also ``,``)."""
    text = text.replace("&", "&amp;").replace("[", "&#91;").replace("]", "&#93;")
    return text.replace(",", "&#44;") if in_param else text


def unescape(text: str, *, in_param: bool = False) -> str:
    """The inverse of :func:`escape`."""
    text = text.replace("&#91;", "[").replace("&#93;", "]")
    if in_param:
        text = text.replace("&#44;", ",")
    return text.replace("&amp;", "&")


def _param(value: Scalar) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode(segments: list[Segment]) -> str:
    """The CQ string of a segment list (``raw_message``)."""
    parts: list[str] = []
    for seg in segments:
        if seg.type == "text":
            parts.append(escape(_param(seg.data.get("text"))))
            continue
        params = "".join(f",{k}={escape(_param(v), in_param=True)}" for k, v in seg.data.items())
        parts.append(f"[CQ:{seg.type}{params}]")
    return "".join(parts)


def decode(message: str) -> list[Segment]:
    """The segments of a CQ string; text outside codes becomes text segments."""
    segments: list[Segment] = []
    pos = 0
    for m in _CQ.finditer(message):
        if m.start() > pos:
            segments.append(Segment(type="text", data={"text": unescape(message[pos : m.start()])}))
        data: dict[str, Scalar] = {}
        for part in filter(None, m.group(2).split(",")):
            key, _, value = part.partition("=")
            data[key] = unescape(value, in_param=True)
        segments.append(Segment(type=m.group(1), data=data))
        pos = m.end()
    if pos < len(message):
        segments.append(Segment(type="text", data={"text": unescape(message[pos:])}))
    return segments
