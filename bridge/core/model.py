"""Contact objects (user, friend, group, members, discuss) with the field names of Openqq.

Field names and types follow reference/openqq-spec.md §8: ids are JSON numbers, except the
discuss member ``id``, which the original emits as a string. The structs are mutable because
the contact book applies property changes to them in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import msgspec

QQ = Annotated[int, msgspec.Meta(ge=0, description="QQ number or session id")]


class User(msgspec.Struct, kw_only=True):
    """The logged-in account (get_user_info)."""

    account: Annotated[
        int | str,
        msgspec.Meta(description="QQ number: a number, as the original (text from older bridges)"),
    ] = ""
    birthday: str = ""
    city: str = ""
    client_type: str = "web"
    country: str = ""
    face: int = 0
    id: QQ
    name: str
    province: str = ""
    sex: str = ""
    signature: str = ""
    state: str = "online"
    uid: QQ


class Friend(msgspec.Struct, kw_only=True, gc=False):
    """A friend of the account."""

    category: str = "我的好友"
    client_type: str = "pc"
    face: int = 0
    flag: int = 0
    id: QQ
    is_vip: int = 0
    markname: str | None = None
    name: str
    state: str = "online"
    uid: QQ | None = None
    vip_level: int = 0


class GroupMember(msgspec.Struct, kw_only=True, gc=False):
    """A member of a group, as seen from the account."""

    card: str | None = None
    city: str = ""
    client_type: str = "unknown"
    country: str = ""
    id: QQ
    join_time: int = 0
    last_speak_time: int = 0
    name: str
    province: str = ""
    role: Literal["owner", "admin", "member"] = "member"
    sex: str = ""
    state: str = "online"
    uid: QQ | None = None


class GroupBasic(msgspec.Struct, kw_only=True):
    """A group without its member list (get_group_basic_info)."""

    code: int = 0
    createtime: int = 0
    id: QQ
    level: int = 0
    markname: str | None = None
    max_admin: int | None = None
    max_member: int | None = None
    memo: str = ""
    name: str
    owner_id: QQ | None = None
    owner_uid: QQ | None = None
    role: Literal["attend", "manage", "create"] = "attend"
    uid: QQ | None = None


class Group(GroupBasic, kw_only=True):
    """A group with its members; ``role`` is the account's own: attend, manage, create."""

    # A list on the wire; in long-lived storage big groups hold a compact
    # bridge.core.members.Members instead (a read-only Sequence).
    member: Sequence[GroupMember] = msgspec.field(default_factory=list)


class DiscussMember(msgspec.Struct, kw_only=True, gc=False):
    """A member of a discuss group; ``id`` is a string, as the original emits it."""

    client_type: str = "unknown"
    id: str
    name: str
    state: str = "online"
    uid: QQ | None = None


class Discuss(msgspec.Struct, kw_only=True):
    """A discuss group (multi-person chat without a number)."""

    id: QQ
    member: list[DiscussMember] = msgspec.field(default_factory=list)
    name: str
    owner_id: QQ | None = None


def basic(group: Group) -> GroupBasic:
    """The group without its member list."""
    fields = {f: getattr(group, f) for f in GroupBasic.__struct_fields__}
    return GroupBasic(**fields)


def display_name(obj: Friend | GroupBasic) -> str:
    """Markname when set, else name: what the original calls ``displayname``."""
    return obj.markname if obj.markname is not None else obj.name


def member_display(member: GroupMember) -> str:
    """A member's name inside a group: the group card when set, else the nick."""
    return member.card or member.name


def text_of(value: object) -> str:
    """The decimal/text form a Perl string comparison sees; undefined compares as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    return str(value)
