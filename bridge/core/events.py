"""Messages and events as they travel on ``openqq.events``: the Openqq post_api JSON, exactly.

Every struct here is one event body of the README's bus contract with the field names of
reference/openqq-spec.md §6.3 (messages) and §6.4 (events). ``KIND`` is the first two words of
its routing key (``receive_message.group_message``), also sent as the AMQP ``type`` property.
Optional fields added by the bridge (``segments``) default to unset and are then omitted.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from bridge.core.model import (
    QQ,
    Discuss,
    DiscussMember,
    Friend,
    Group,
    GroupMember,
    User,
)

Scalar = str | int | float | bool | None


class Segment(msgspec.Struct, kw_only=True):
    """One piece of rich content (OneBot style): text, face, image, at, ..."""

    type: str
    data: dict[str, Scalar] = msgspec.field(default_factory=dict)


class _Message(msgspec.Struct, kw_only=True):
    KIND: ClassVar[str]

    id: Annotated[int, msgspec.Meta(description="message id")]
    time: Annotated[int, msgspec.Meta(description="Unix time, seconds")]
    content: str
    sender: str
    sender_id: QQ
    sender_uid: QQ | None
    segments: list[Segment] | msgspec.UnsetType = msgspec.UNSET


class _Received(_Message, kw_only=True):
    post_type: Literal["receive_message"] = "receive_message"
    class_: Literal["recv"] = msgspec.field(default="recv", name="class")
    receiver: str
    receiver_id: QQ
    receiver_uid: QQ | None


class _Sent(_Message, kw_only=True):
    post_type: Literal["send_message"] = "send_message"
    class_: Literal["send"] = msgspec.field(default="send", name="class")
    code: int
    from_: Literal["api", "code"] = msgspec.field(default="api", name="from")
    info: str
    msg: str
    source: Literal["local", "outer"] = "local"
    ttl: int = 2


class ReceivedFriendMessage(_Received, kw_only=True):
    """A friend wrote to the account."""

    KIND = "receive_message.friend_message"
    type: Literal["friend_message"] = "friend_message"


class ReceivedGroupMessage(_Received, kw_only=True):
    """Someone wrote in a group; ``receiver`` is the account's own name in that group."""

    KIND = "receive_message.group_message"
    type: Literal["group_message"] = "group_message"
    group: str
    group_id: QQ
    group_uid: QQ | None


class ReceivedDiscussMessage(_Received, kw_only=True):
    """Someone wrote in a discuss group."""

    KIND = "receive_message.discuss_message"
    type: Literal["discuss_message"] = "discuss_message"
    discuss: str
    discuss_id: QQ


class ReceivedSessMessage(_Received, kw_only=True):
    """A temporary chat from a stranger met in a group or discuss (``via``)."""

    KIND = "receive_message.sess_message"
    type: Literal["sess_message"] = "sess_message"
    via: Literal["group", "discuss"]
    group: str | msgspec.UnsetType = msgspec.UNSET
    group_id: QQ | msgspec.UnsetType = msgspec.UNSET
    group_uid: QQ | msgspec.UnsetType | None = msgspec.UNSET
    discuss: str | msgspec.UnsetType = msgspec.UNSET
    discuss_id: QQ | msgspec.UnsetType = msgspec.UNSET


class SentFriendMessage(_Sent, kw_only=True):
    """The account sent a message to a friend."""

    KIND = "send_message.friend_message"
    type: Literal["friend_message"] = "friend_message"
    receiver: str
    receiver_id: QQ
    receiver_uid: QQ | None


class SentGroupMessage(_Sent, kw_only=True):
    """The account sent a message to a group."""

    KIND = "send_message.group_message"
    type: Literal["group_message"] = "group_message"
    group: str
    group_id: QQ
    group_uid: QQ | None


class SentDiscussMessage(_Sent, kw_only=True):
    """The account sent a message to a discuss group."""

    KIND = "send_message.discuss_message"
    type: Literal["discuss_message"] = "discuss_message"
    discuss: str
    discuss_id: QQ


class SentSessMessage(_Sent, kw_only=True):
    """The account sent a temporary-chat message to a group or discuss member."""

    KIND = "send_message.sess_message"
    type: Literal["sess_message"] = "sess_message"
    receiver: str
    receiver_id: QQ
    receiver_uid: QQ | None
    via: Literal["group", "discuss"]
    group: str | msgspec.UnsetType = msgspec.UNSET
    group_id: QQ | msgspec.UnsetType = msgspec.UNSET
    group_uid: QQ | msgspec.UnsetType | None = msgspec.UNSET
    discuss: str | msgspec.UnsetType = msgspec.UNSET
    discuss_id: QQ | msgspec.UnsetType = msgspec.UNSET


class _Event(msgspec.Struct, kw_only=True):
    KIND: ClassVar[str]
    post_type: Literal["event"] = "event"


class Login(_Event, kw_only=True):
    """Logged in: params [1] after a QR scan (ids may have changed), [0] otherwise."""

    KIND = "event.login"
    event: Literal["login"] = "login"
    params: tuple[int]


class Stop(_Event, kw_only=True):
    """The client stopped; params is empty."""

    KIND = "event.stop"
    event: Literal["stop"] = "stop"
    params: tuple[()] = ()


class StateChange(_Event, kw_only=True):
    """The client state changed: params [old, new] (init, loading, scaning, ...)."""

    KIND = "event.state_change"
    event: Literal["state_change"] = "state_change"
    params: tuple[str, str]


class InputQrcode(_Event, kw_only=True):
    """A login QR code to scan: [file path, base64 PNG (MIME lines), optional URL]."""

    KIND = "event.input_qrcode"
    event: Literal["input_qrcode"] = "input_qrcode"
    params: list[str]


class NewFriend(_Event, kw_only=True):
    """A friend was added: params [friend]."""

    KIND = "event.new_friend"
    event: Literal["new_friend"] = "new_friend"
    params: tuple[Friend]


class LoseFriend(_Event, kw_only=True):
    """A friend was removed: params [friend]."""

    KIND = "event.lose_friend"
    event: Literal["lose_friend"] = "lose_friend"
    params: tuple[Friend]


class NewGroup(_Event, kw_only=True):
    """The account joined a group: params [group with members]."""

    KIND = "event.new_group"
    event: Literal["new_group"] = "new_group"
    params: tuple[Group]


class LoseGroup(_Event, kw_only=True):
    """The account left (or was removed from) a group: params [group]."""

    KIND = "event.lose_group"
    event: Literal["lose_group"] = "lose_group"
    params: tuple[Group]


class NewGroupMember(_Event, kw_only=True):
    """Someone joined a group: params [member, group with members]."""

    KIND = "event.new_group_member"
    event: Literal["new_group_member"] = "new_group_member"
    params: tuple[GroupMember, Group]


class LoseGroupMember(_Event, kw_only=True):
    """Someone left or was kicked from a group: params [member, group with members]."""

    KIND = "event.lose_group_member"
    event: Literal["lose_group_member"] = "lose_group_member"
    params: tuple[GroupMember, Group]


class NewDiscuss(_Event, kw_only=True):
    """The account joined a discuss group: params [discuss]."""

    KIND = "event.new_discuss"
    event: Literal["new_discuss"] = "new_discuss"
    params: tuple[Discuss]


class LoseDiscuss(_Event, kw_only=True):
    """The account left a discuss group: params [discuss]."""

    KIND = "event.lose_discuss"
    event: Literal["lose_discuss"] = "lose_discuss"
    params: tuple[Discuss]


class NewDiscussMember(_Event, kw_only=True):
    """Someone joined a discuss group: params [member, discuss]."""

    KIND = "event.new_discuss_member"
    event: Literal["new_discuss_member"] = "new_discuss_member"
    params: tuple[DiscussMember, Discuss]


class LoseDiscussMember(_Event, kw_only=True):
    """Someone left a discuss group: params [member, discuss]."""

    KIND = "event.lose_discuss_member"
    event: Literal["lose_discuss_member"] = "lose_discuss_member"
    params: tuple[DiscussMember, Discuss]


class FriendPropertyChange(_Event, kw_only=True):
    """A friend attribute changed: params [friend after, property, old, new]."""

    KIND = "event.friend_property_change"
    event: Literal["friend_property_change"] = "friend_property_change"
    params: tuple[Friend, str, Scalar, Scalar]


class GroupPropertyChange(_Event, kw_only=True):
    """A group attribute changed: params [group after, property, old, new]."""

    KIND = "event.group_property_change"
    event: Literal["group_property_change"] = "group_property_change"
    params: tuple[Group, str, Scalar, Scalar]


class GroupMemberPropertyChange(_Event, kw_only=True):
    """A member attribute changed: params [member after, property, old, new]."""

    KIND = "event.group_member_property_change"
    event: Literal["group_member_property_change"] = "group_member_property_change"
    params: tuple[GroupMember, str, Scalar, Scalar]


class UserPropertyChange(_Event, kw_only=True):
    """An attribute of the account itself changed: params [user, property, old, new]."""

    KIND = "event.user_property_change"
    event: Literal["user_property_change"] = "user_property_change"
    params: tuple[User, str, Scalar, Scalar]


class GroupMemberShutup(_Event, kw_only=True):
    """Extension: a member was muted: params [member, group, seconds] (0 = unmuted)."""

    KIND = "event.group_member_shutup"
    event: Literal["group_member_shutup"] = "group_member_shutup"
    params: tuple[GroupMember, Group, int]


class UpdateGroup(_Event, kw_only=True):
    """A group's member list was (re)loaded from the QQ side: params [group with members]."""

    KIND = "event.update_group"
    event: Literal["update_group"] = "update_group"
    params: tuple[Group]


class GroupRecall(_Event, kw_only=True):
    """Extension: a group message was recalled: [group, operator uid, sender uid, message id]."""

    KIND = "event.group_recall"
    event: Literal["group_recall"] = "group_recall"
    params: tuple[Group, QQ, QQ, int]


class FriendRecall(_Event, kw_only=True):
    """Extension: a friend recalled a message: [friend, message id]."""

    KIND = "event.friend_recall"
    event: Literal["friend_recall"] = "friend_recall"
    params: tuple[Friend, int]


class FriendRequest(_Event, kw_only=True):
    """Extension: someone asks to become a friend: [uid, comment, flag]."""

    KIND = "event.friend_request"
    event: Literal["friend_request"] = "friend_request"
    params: tuple[QQ, str, str]


class GroupRequest(_Event, kw_only=True):
    """Extension: a join request or invitation: [group uid, uid, add|invite, comment, flag]."""

    KIND = "event.group_request"
    event: Literal["group_request"] = "group_request"
    params: tuple[QQ, QQ, str, str, str]


class GroupUpload(_Event, kw_only=True):
    """Extension: a file was uploaded to a group: [group, uploader uid, file]."""

    KIND = "event.group_upload"
    event: Literal["group_upload"] = "group_upload"
    params: tuple[Group, QQ, dict[str, Scalar]]


class Notify(_Event, kw_only=True):
    """Extension: poke, lucky king, honor...: [sub_type, group uid or null, uid, target or null]."""

    KIND = "event.notify"
    event: Literal["notify"] = "notify"
    params: tuple[str, QQ | None, QQ, QQ | None]
    data: (
        Annotated[
            dict[str, Scalar],
            msgspec.Meta(description="what else the notice said: title, honor_type, ..."),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class RiskControl(_Event, kw_only=True):
    """Extension: QQ refused an action in a way that signals risk control (风控).

    params [action, retcode, the implementation's words, target (group or user uid or null)].
    """

    KIND = "event.risk_control"
    event: Literal["risk_control"] = "risk_control"
    params: tuple[str, int, str, QQ | None]


MessageEvent = (
    ReceivedFriendMessage
    | ReceivedGroupMessage
    | ReceivedDiscussMessage
    | ReceivedSessMessage
    | SentFriendMessage
    | SentGroupMessage
    | SentDiscussMessage
    | SentSessMessage
)
ClientEvent = (
    Login
    | Stop
    | StateChange
    | InputQrcode
    | NewFriend
    | LoseFriend
    | NewGroup
    | LoseGroup
    | NewGroupMember
    | LoseGroupMember
    | NewDiscuss
    | LoseDiscuss
    | NewDiscussMember
    | LoseDiscussMember
    | FriendPropertyChange
    | GroupPropertyChange
    | GroupMemberPropertyChange
    | UserPropertyChange
    | GroupMemberShutup
    | UpdateGroup
    | GroupRecall
    | FriendRecall
    | FriendRequest
    | GroupRequest
    | GroupUpload
    | Notify
    | RiskControl
)
Event = MessageEvent | ClientEvent

#: Every event body by its kind (the AMQP ``type`` property).
EVENT_TYPES: dict[str, type[Event]] = {
    cls.KIND: cls
    for cls in (
        *MessageEvent.__args__,
        *ClientEvent.__args__,
    )
}

#: Names of the non-message events (``post_event_list`` entries), in declaration order.
EVENT_NAMES: tuple[str, ...] = tuple(
    kind.split(".", 1)[1] for kind in EVENT_TYPES if kind.startswith("event.")
)
#: The original's default ``post_event_list``.
DEFAULT_EVENTS: tuple[str, ...] = (
    "login",
    "stop",
    "state_change",
    "input_qrcode",
    "new_group",
    "new_friend",
    "new_group_member",
    "lose_group",
    "lose_friend",
    "lose_group_member",
)
