"""Pure conversions between OneBot v11 data and the Openqq model (no I/O).

Message content becomes the Openqq text form (bridge.core.segtext: ``[图片]``, ``[表情]``,
``@name``, faces by name) and the original segments are kept, so nothing is lost. Segment
data is kept as the CQ-string format carries it (text; nested data as JSON), so the array and
the string format of one message give the same segments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from bridge.core import cqcode
from bridge.core.events import Scalar, Segment
from bridge.core.faces import FACE_IDS
from bridge.core.model import Friend, Group, GroupMember, User
from bridge.core.segtext import as_str
from bridge.upstream.onebot.frames import OBFriend, OBGroup, OBLoginInfo, OBMember, seconds

_FACE_TEXT = re.compile(r"\[([^\[\]]{1,8})\]")


def data_value(value: Any) -> str | None:
    """A segment data value as the CQ-string format writes it: text, nested data as JSON.

    Both formats of one message then give the same segments: numbers and booleans become
    their JSON text, ``null`` and "" count as absent (None: CQ codes cannot tell them apart),
    objects and lists stay JSON.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    try:
        return msgspec.json.encode(value).decode()
    except (RecursionError, TypeError):
        return ""


def segments_of(message: Any) -> list[Segment]:
    """Segments from an array message, a single segment object, or a CQ string."""
    if isinstance(message, str):
        return cqcode.decode(message)
    if isinstance(message, Mapping):
        message = [message]
    out: list[Segment] = []
    for seg in message if isinstance(message, list) else []:
        if not isinstance(seg, Mapping):
            continue
        data = seg.get("data")
        clean: dict[str, Scalar] = {}
        if isinstance(data, Mapping):
            for k, v in data.items():
                text = data_value(v)
                if text is not None:
                    clean[str(k)] = text
        out.append(Segment(type=as_str(seg.get("type")) or "unknown", data=clean))
    return out


def outgoing(content: str) -> list[dict[str, Any]]:
    """Segments to send for Openqq text: known ``[名称]`` faces become face segments.

    Everything else is a text segment, which implementations never parse as CQ codes, so
    ``[``, ``]``, ``&`` and ``,`` in user text are sent as they are.
    """
    out: list[dict[str, Any]] = []
    pos = 0
    for m in _FACE_TEXT.finditer(content):
        fid = FACE_IDS.get(m.group(1))
        if fid is None:
            continue
        if m.start() > pos:
            out.append({"type": "text", "data": {"text": content[pos : m.start()]}})
        out.append({"type": "face", "data": {"id": str(fid)}})
        pos = m.end()
    if pos < len(content) or not out:
        out.append({"type": "text", "data": {"text": content[pos:]}})
    return out


def user_of(info: OBLoginInfo, sex: str = "") -> User:
    """The account from get_login_info (+ the sex of get_stranger_info of itself)."""
    return User(
        id=info.user_id,
        uid=info.user_id,
        account=info.user_id,
        name=info.nickname,
        sex=sex if sex in ("male", "female") else "",
    )


def friend_of(item: OBFriend, category: str = "我的好友") -> Friend:
    """A friend from get_friend_list / get_friends_with_category (id and uid: the QQ number)."""
    remark = item.remark
    return Friend(
        id=item.user_id,
        uid=item.user_id,
        name=item.nickname,
        markname=remark if remark and remark != item.nickname else None,
        category=category,
    )


_ROLE: dict[str, Literal["owner", "admin", "member"]] = {"owner": "owner", "admin": "admin"}


def member_of(item: OBMember) -> GroupMember:
    """A group member from get_group_member_list / get_group_member_info."""
    return GroupMember(
        id=item.user_id,
        uid=item.user_id,
        name=item.nickname,
        card=item.card or None,
        role=_ROLE.get(item.role, "member"),
        sex=item.sex if item.sex in ("male", "female") else "",
        province=item.area,
        join_time=seconds(item.join_time),
        last_speak_time=seconds(item.last_sent_time),
    )


def group_of(item: OBGroup, members: list[GroupMember] | None = None, self_id: int = 0) -> Group:
    """A group from get_group_list / get_group_info, with its members when loaded."""
    members = members or []
    owner = next((m for m in members if m.role == "owner"), None)
    me = next((m for m in members if m.uid == self_id), None)
    role = {"owner": "create", "admin": "manage"}.get(me.role if me else "", "attend")
    return Group(
        id=item.group_id,
        uid=item.group_id,
        code=item.group_id,
        name=item.group_name,
        role=role,  # type: ignore[arg-type]
        owner_id=owner.id if owner else None,
        owner_uid=owner.uid if owner else None,
        max_member=item.max_member_count,
        member=members,
    )
