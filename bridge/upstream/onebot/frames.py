"""OneBot v11 wire frames: bytes in, typed frames out (no I/O, no core model).

Every frame is decoded in two steps, as STYLE (b) 5 says: JSON to a plain object (tolerating
what real implementations write), then ``msgspec.convert(..., strict=False)`` into the Struct
for its ``post_type``. Lax conversion takes ids as JSON numbers or numeric strings (NapCat and
LLOneBot write both); ``null`` counts as absent. Unknown fields are ignored. A frame that
cannot be decoded raises :class:`~bridge.upstream.onebot.errors.BadFrame`, never anything else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import msgspec

from bridge.upstream.onebot.errors import BadFrame

T = TypeVar("T")

#: OneBot ``time`` above this is in milliseconds (some implementations), not seconds.
_MS_THRESHOLD: Final = 100_000_000_000

# A JSON escaped backslash (kept), a proper surrogate pair (kept), or a lone surrogate escape
# (replaced by U+FFFD): Node's JSON.stringify writes lone ones for emoji cut in half.
_SURROGATE = re.compile(
    r"\\\\|\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\u(d[89a-f][0-9a-f]{2})", re.IGNORECASE
)
_DECODER: Final = msgspec.json.Decoder()


def _replace_lone_surrogates(text: str) -> str:
    def fix(m: re.Match[str]) -> str:
        return "\\ufffd" if m.group(3) else m.group(0)

    return _SURROGATE.sub(fix, text)


def decode_frame(data: str | bytes) -> dict[str, Any]:
    """The JSON object of one WebSocket frame; BadFrame for anything else."""
    try:
        obj = _DECODER.decode(data)
    except RecursionError:
        msg = "nested too deeply to decode"
        raise BadFrame(msg) from None
    except msgspec.DecodeError as exc:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        fixed = _replace_lone_surrogates(text)
        if fixed == text:
            msg = f"not JSON: {exc}"
            raise BadFrame(msg) from None
        try:
            obj = _DECODER.decode(fixed)
        except (msgspec.DecodeError, RecursionError) as again:
            msg = f"not JSON: {again}"
            raise BadFrame(msg) from None
    if not isinstance(obj, dict):
        msg = f"a JSON {type(obj).__name__}, not an object"
        raise BadFrame(msg)
    return obj


def _drop_nulls(obj: Mapping[str, Any]) -> dict[str, Any]:
    # One level deep is enough: the nested objects typed below (sender, anonymous, status)
    # are flat, and message content is read by translate.segments_of.
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if v is None:
            continue
        out[k] = {kk: vv for kk, vv in v.items() if vv is not None} if isinstance(v, dict) else v
    return out


def convert(obj: Any, kind: type[T]) -> T:
    """``obj`` (a decoded JSON value) as ``kind``, laxly; BadFrame when it does not fit."""
    try:
        return msgspec.convert(
            _drop_nulls(obj) if isinstance(obj, Mapping) else obj, kind, strict=False
        )
    except msgspec.ValidationError as exc:
        msg = f"not a valid {kind.__name__}: {exc}"
        raise BadFrame(msg) from None
    except RecursionError:
        msg = f"not a valid {kind.__name__}: nested too deeply"
        raise BadFrame(msg) from None


def seconds(t: int) -> int:
    """OneBot ``time`` in seconds (some implementations send milliseconds)."""
    return t // 1000 if t > _MS_THRESHOLD else t


class _Frame(msgspec.Struct, kw_only=True):
    pass


class OBReply(_Frame, kw_only=True):
    """The answer to an action (correlated by ``echo``)."""

    status: str = ""
    retcode: int = -1
    data: Any = None
    echo: str | int | None = None
    wording: str = ""
    message: str = ""
    msg: str = ""


class OBHeader(_Frame, kw_only=True):
    """The fields that say what an event frame is, and whose account it is about."""

    post_type: str = ""
    message_type: str = ""
    notice_type: str = ""
    request_type: str = ""
    meta_event_type: str = ""
    sub_type: str = ""
    self_id: int = 0
    time: int = 0


class OBStatus(_Frame, kw_only=True):
    """``status`` of a heartbeat (``online: false``: the account itself is offline)."""

    online: bool | None = None
    good: bool | None = None


class OBMeta(OBHeader, kw_only=True):
    """``meta_event``: lifecycle and heartbeat."""

    interval: int = 0
    status: OBStatus | None = None


class OBSender(_Frame, kw_only=True):
    """``sender`` of a message."""

    user_id: int = 0
    nickname: str = ""
    card: str = ""
    role: str = ""
    title: str = ""
    group_id: int = 0


class OBAnonymous(_Frame, kw_only=True):
    """``anonymous`` of a group message sent anonymously."""

    id: int = 0
    name: str = ""
    flag: str = ""


class OBMessage(OBHeader, kw_only=True):
    """``message`` and ``message_sent``."""

    message_id: int = 0
    user_id: int = 0
    group_id: int = 0
    target_id: int = 0
    temp_source: int = 0
    message: Any = None
    raw_message: str = ""
    message_format: str = ""
    sender: OBSender = msgspec.field(default_factory=OBSender)
    anonymous: OBAnonymous | None = None


class OBNotice(OBHeader, kw_only=True):
    """``notice``: every field any known notice carries (absent ones keep their default)."""

    group_id: int = 0
    user_id: int = 0
    operator_id: int = 0
    target_id: int = 0
    sender_id: int = 0
    message_id: int = 0
    duration: int = 0
    card_new: str = ""
    card_old: str = ""
    title: str = ""
    honor_type: str = ""
    name_new: str = ""
    name: str = ""
    file: dict[str, Any] = msgspec.field(default_factory=dict)
    event_type: int | None = None
    likes: list[Any] = msgspec.field(default_factory=list)
    code: str = ""
    is_add: bool | None = None
    times: int = 0
    operator_nick: str = ""
    status_text: str = ""
    share_link: str = ""


class OBRequest(OBHeader, kw_only=True):
    """``request``: friend and group requests."""

    user_id: int = 0
    group_id: int = 0
    comment: str = ""
    flag: str | int = ""


class OBLoginInfo(_Frame, kw_only=True):
    """get_login_info."""

    user_id: int = 0
    nickname: str = ""


class OBVersion(_Frame, kw_only=True):
    """get_version_info."""

    app_name: str = ""
    app_version: str = ""


class OBFriend(_Frame, kw_only=True):
    """An item of get_friend_list."""

    user_id: int = 0
    nickname: str = ""
    remark: str = ""


class OBCategory(_Frame, kw_only=True):
    """An item of get_friends_with_category (NapCat, LLOneBot spell it differently)."""

    categoryName: str = ""  # noqa: N815  # the wire name
    category_name: str = ""
    buddyList: list[Any] = msgspec.field(default_factory=list)  # noqa: N815
    friends: list[Any] = msgspec.field(default_factory=list)


class OBMember(_Frame, kw_only=True):
    """An item of get_group_member_list, or get_group_member_info."""

    user_id: int = 0
    nickname: str = ""
    card: str = ""
    role: str = ""
    sex: str = ""
    area: str = ""
    join_time: int = 0
    last_sent_time: int = 0


class OBGroup(_Frame, kw_only=True):
    """An item of get_group_list, or get_group_info."""

    group_id: int = 0
    group_name: str = ""
    max_member_count: int | None = None


class OBSent(_Frame, kw_only=True):
    """The answer of send_private_msg / send_group_msg."""

    message_id: int = 0


Frame = OBMeta | OBMessage | OBNotice | OBRequest | OBHeader
_KINDS: dict[str, type[Frame]] = {
    "meta_event": OBMeta,
    "message": OBMessage,
    "message_sent": OBMessage,
    "notice": OBNotice,
    "request": OBRequest,
}


def parse_event(obj: dict[str, Any]) -> Frame:
    """The typed frame of an event object, by ``post_type``; BadFrame if it does not fit."""
    return convert(obj, _KINDS.get(str(obj.get("post_type") or ""), OBHeader))


def items(data: Any, kind: type[T]) -> list[T]:
    """The items of a list answer that fit ``kind`` (the others are skipped)."""
    out: list[T] = []
    for item in data if isinstance(data, list) else []:
        try:
            out.append(convert(item, kind))
        except BadFrame:
            continue
    return out
