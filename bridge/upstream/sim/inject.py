"""Bodies of ``POST /sim/inject``: what the simulated account can be made to receive.

Each is a JSON object tagged by ``type``. Unknown fields are refused so a typo is an error,
not a silently ignored parameter.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from bridge.core.events import Scalar
from bridge.core.model import QQ

Text = Annotated[str, msgspec.Meta(max_length=16384)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class _Inject(
    msgspec.Struct,
    kw_only=True,
    frozen=True,
    tag_field="type",
    forbid_unknown_fields=True,
):
    pass


class InjectFriendMessage(_Inject, kw_only=True, frozen=True, tag="friend_message"):
    """A friend (sender_uid or sender_id) writes to the account."""

    sender_id: QQ | None = None
    sender_uid: QQ | None = None
    content: Text


class InjectGroupMessage(_Inject, kw_only=True, frozen=True, tag="group_message"):
    """A member writes in a group (group_uid or group_id; sender_uid or sender_id)."""

    group_id: QQ | None = None
    group_uid: QQ | None = None
    sender_id: QQ | None = None
    sender_uid: QQ | None = None
    content: Text


class InjectDiscussMessage(_Inject, kw_only=True, frozen=True, tag="discuss_message"):
    """A member writes in a discuss group."""

    discuss_id: QQ
    sender_id: str | None = None
    sender_uid: QQ | None = None
    content: Text


class InjectSessMessage(_Inject, kw_only=True, frozen=True, tag="sess_message"):
    """A group (or discuss) member who is not a friend starts a temporary chat."""

    group_id: QQ | None = None
    group_uid: QQ | None = None
    discuss_id: QQ | None = None
    sender_id: QQ | None = None
    sender_uid: QQ | None = None
    content: Text


class InjectNewFriend(_Inject, kw_only=True, frozen=True, tag="new_friend"):
    """Someone becomes a friend."""

    id: QQ | None = None
    uid: QQ
    name: Name
    markname: str | None = None
    category: str = "我的好友"


class InjectLoseFriend(_Inject, kw_only=True, frozen=True, tag="lose_friend"):
    """A friend is removed."""

    id: QQ | None = None
    uid: QQ | None = None


class InjectMember(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A member of an injected group."""

    id: QQ | None = None
    uid: QQ
    name: Name
    card: str | None = None
    role: str = "member"


class InjectNewGroup(_Inject, kw_only=True, frozen=True, tag="new_group"):
    """The account joins a group."""

    id: QQ | None = None
    uid: QQ
    name: Name
    role: str = "attend"
    members: list[InjectMember] = msgspec.field(default_factory=list)


class InjectLoseGroup(_Inject, kw_only=True, frozen=True, tag="lose_group"):
    """The account leaves a group."""

    group_id: QQ | None = None
    group_uid: QQ | None = None


class InjectNewGroupMember(_Inject, kw_only=True, frozen=True, tag="new_group_member"):
    """Someone joins a group."""

    group_id: QQ | None = None
    group_uid: QQ | None = None
    id: QQ | None = None
    uid: QQ
    name: Name
    card: str | None = None


class InjectLoseGroupMember(_Inject, kw_only=True, frozen=True, tag="lose_group_member"):
    """Someone leaves a group."""

    group_id: QQ | None = None
    group_uid: QQ | None = None
    id: QQ | None = None
    uid: QQ | None = None


class InjectNewDiscussMember(_Inject, kw_only=True, frozen=True, tag="new_discuss_member"):
    """Someone joins a discuss group."""

    discuss_id: QQ
    id: QQ | None = None
    uid: QQ
    name: Name


class InjectLoseDiscussMember(_Inject, kw_only=True, frozen=True, tag="lose_discuss_member"):
    """Someone leaves a discuss group."""

    discuss_id: QQ
    id: str | None = None
    uid: QQ | None = None


class InjectFriendPropertyChange(_Inject, kw_only=True, frozen=True, tag="friend_property_change"):
    """A friend's attribute changes (e.g. markname, state)."""

    id: QQ | None = None
    uid: QQ | None = None
    property: Name
    value: Scalar


class InjectGroupPropertyChange(_Inject, kw_only=True, frozen=True, tag="group_property_change"):
    """A group's attribute changes (e.g. name, memo)."""

    group_id: QQ | None = None
    group_uid: QQ | None = None
    property: Name
    value: Scalar


class InjectGroupMemberPropertyChange(
    _Inject, kw_only=True, frozen=True, tag="group_member_property_change"
):
    """A member's attribute changes (e.g. card)."""

    group_id: QQ | None = None
    group_uid: QQ | None = None
    id: QQ | None = None
    uid: QQ | None = None
    property: Name
    value: Scalar


Inject = (
    InjectFriendMessage
    | InjectGroupMessage
    | InjectDiscussMessage
    | InjectSessMessage
    | InjectNewFriend
    | InjectLoseFriend
    | InjectNewGroup
    | InjectLoseGroup
    | InjectNewGroupMember
    | InjectLoseGroupMember
    | InjectNewDiscussMember
    | InjectLoseDiscussMember
    | InjectFriendPropertyChange
    | InjectGroupPropertyChange
    | InjectGroupMemberPropertyChange
)
INJECT_DECODER = msgspec.json.Decoder(Inject)


class LoadRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``POST /sim/load``: generate group messages at ``rate`` per second (0 stops)."""

    rate: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]
    seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 60.0
    group_uid: QQ | None = None
