"""Commands the bridges consume and the replies they send, shaped like the Openqq API.

A command body is a JSON object tagged by ``command`` whose other keys are the parameter names
of the matching ``/openqq/*`` endpoint (README: bus contract). A reply body is exactly the JSON the
endpoint returns. ``QUEUE`` names the command queue (send, kick, shutup, query, control) a
command is published to.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Final, Literal

import msgspec

from bridge.core.events import Segment
from bridge.core.model import QQ, Discuss, Friend, Group, GroupBasic, User

QueueKind = Literal["send", "kick", "shutup", "query", "control"]
QUEUE_KINDS: tuple[QueueKind, ...] = ("send", "kick", "shutup", "query", "control")

#: Longest message text a command carries, in characters (the HTTP adapter checks it too).
MAX_CONTENT: Final = 16384
#: Longest name or displayname a lookup carries, in characters.
MAX_NAME: Final = 256
#: Most members one kick or shutup command names.
MAX_MEMBERS: Final = 2000
#: Longest mute a shutup command carries, in seconds (30 days, QQ's longest).
MAX_SHUTUP_SECONDS: Final = 30 * 86400
#: Most segments a send command carries.
MAX_SEGMENTS: Final = 100
#: Most ``data`` keys one segment carries.
MAX_SEGMENT_KEYS: Final = 16
#: Longest ``data`` key, in characters.
MAX_SEGMENT_KEY: Final = 64
#: Most characters of all ``data`` values of one send together (a base64 image fits, as in a
#: 4 MiB OneBot frame).
MAX_SEGMENT_TEXT: Final = 4 << 20
#: Segment types a send command carries (OneBot v11 names); others are refused as invalid.
SEGMENT_TYPES: Final = frozenset(
    {"text", "face", "image", "record", "video", "at", "reply", "file"}
)
#: Most entries one get_contacts_page answer holds (a contact counts 1, each of its members 1
#: more): about 20 MB of JSON, far below RabbitMQ's 128 MiB message size limit.
MAX_PAGE_ENTRIES: Final = 100_000
#: The entries of a page when the command does not say (about 2 MB of JSON).
PAGE_ENTRIES: Final = 10_000
#: The largest page cursor (a JSON number every client reads exactly: 2**53 - 1).
MAX_CURSOR: Final = 2**53 - 1
#: ``info`` of the 发送失败 reply to a send without content.
EMPTY_CONTENT: Final = "消息内容为空 (content is empty)"

Content = Annotated[str, msgspec.Meta(max_length=MAX_CONTENT, description="message text")]
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
Members = Annotated[list[QQ], msgspec.Meta(max_length=MAX_MEMBERS)]
Criterion = str | int | None
Origin = Annotated[
    Literal["api", "code"],
    msgspec.Meta(description='"code" marks an automatic reply (post_api); reported as "from"'),
]


class _Command(msgspec.Struct, kw_only=True, frozen=True, tag_field="command"):
    QUEUE: ClassVar[QueueKind]


SendSegments = Annotated[
    list[Segment],
    msgspec.Meta(
        max_length=MAX_SEGMENTS,
        description=(
            "the message as OneBot v11 segments ({type, data}), sent as they are where the"
            " upstream can (OneBot); content stays its plain-text rendering. Types: "
            + ", ".join(sorted(SEGMENT_TYPES))
            + f"; at most {MAX_SEGMENT_KEYS} data keys each, {MAX_SEGMENT_TEXT} characters"
            " of data values in all"
        ),
    ),
]


def check_segments(segments: list[Segment] | msgspec.UnsetType) -> None:
    """Refuse segments a send cannot carry (ValueError: the command is invalid)."""
    if segments is msgspec.UNSET:
        return
    total = 0
    for i, seg in enumerate(segments):
        if seg.type not in SEGMENT_TYPES:
            known = ", ".join(sorted(SEGMENT_TYPES))
            msg = f"segments[{i}]: type {seg.type!r} is not one of {known}"
            raise ValueError(msg)
        if len(seg.data) > MAX_SEGMENT_KEYS:
            msg = f"segments[{i}]: more than {MAX_SEGMENT_KEYS} data keys"
            raise ValueError(msg)
        for key, value in seg.data.items():
            if len(key) > MAX_SEGMENT_KEY:
                msg = f"segments[{i}]: data key longer than {MAX_SEGMENT_KEY} characters"
                raise ValueError(msg)
            total += len(value) if isinstance(value, str) else 0
    if total > MAX_SEGMENT_TEXT:
        msg = f"segments: data values longer than {MAX_SEGMENT_TEXT} characters in all"
        raise ValueError(msg)


class _Send(_Command, kw_only=True, frozen=True):
    QUEUE = "send"
    #: Optional (an addition to the Openqq parameters): omitted when unset.
    segments: SendSegments | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        check_segments(self.segments)

    @property
    def segment_list(self) -> list[Segment] | None:
        """The segments to send, or None when none are given (an empty list counts as none)."""
        return self.segments if isinstance(self.segments, list) and self.segments else None


class SendFriendMessage(_Send, kw_only=True, frozen=True, tag="send_friend_message"):
    """Send to a friend found by id, uid, name and displayname (all given must match)."""

    id: QQ | None = None
    uid: QQ | None = None
    name: Name | None = None
    displayname: Name | None = None
    content: Content
    from_: Origin = msgspec.field(default="api", name="from")


class SendGroupMessage(_Send, kw_only=True, frozen=True, tag="send_group_message"):
    """Send to a group found by id, uid, name and displayname (all given must match)."""

    id: QQ | None = None
    uid: QQ | None = None
    name: Name | None = None
    displayname: Name | None = None
    content: Content
    from_: Origin = msgspec.field(default="api", name="from")


class SendDiscussMessage(_Send, kw_only=True, frozen=True, tag="send_discuss_message"):
    """Send to a discuss group found by id."""

    id: QQ | None = None
    content: Content
    from_: Origin = msgspec.field(default="api", name="from")


class SendSessMessage(_Send, kw_only=True, frozen=True, tag="send_sess_message"):
    """Temporary chat with a member of a group (group_id/group_uid) or discuss (discuss_id)."""

    group_id: QQ | None = None
    group_uid: QQ | None = None
    discuss_id: QQ | None = None
    id: QQ | None = None
    uid: QQ | None = None
    content: Content
    from_: Origin = msgspec.field(default="api", name="from")


class KickGroupMember(_Command, kw_only=True, frozen=True, tag="kick_group_member"):
    """Remove members (member_id wins over member_uid) from a group."""

    QUEUE = "kick"
    group_id: QQ | None = None
    group_uid: QQ | None = None
    member_id: Members | None = None
    member_uid: Members | None = None


class ShutupGroupMember(_Command, kw_only=True, frozen=True, tag="shutup_group_member"):
    """Mute members of a group for ``time`` seconds (at least 60; 0 lifts the mute)."""

    QUEUE = "shutup"
    group_id: QQ | None = None
    group_uid: QQ | None = None
    member_id: Members | None = None
    member_uid: Members | None = None
    time: Annotated[int, msgspec.Meta(ge=0, le=MAX_SHUTUP_SECONDS, description="seconds")] = 60


class GetUserInfo(_Command, kw_only=True, frozen=True, tag="get_user_info"):
    """The logged-in user."""

    QUEUE = "query"


class GetFriendInfo(_Command, kw_only=True, frozen=True, tag="get_friend_info"):
    """Every friend."""

    QUEUE = "query"


class GetGroupInfo(_Command, kw_only=True, frozen=True, tag="get_group_info"):
    """Every group with its members."""

    QUEUE = "query"


class GetGroupBasicInfo(_Command, kw_only=True, frozen=True, tag="get_group_basic_info"):
    """Every group without members."""

    QUEUE = "query"


class GetDiscussInfo(_Command, kw_only=True, frozen=True, tag="get_discuss_info"):
    """Every discuss group with its members."""

    QUEUE = "query"


ContactKind = Literal["friend", "group", "discuss"]


class GetContactsPage(_Command, kw_only=True, frozen=True, tag="get_contacts_page"):
    """One page of the friends, groups (with members) or discuss groups, in list order.

    An addition to Openqq, for replicas of large accounts: no answer comes near the broker's
    message size limit. Ask with ``after`` 0, then with the ``next`` of each answer until it is
    null. A page holds at most ``max_entries`` entries (a contact counts 1, each of its members
    1 more), but always at least one contact, however many members it has. Contacts added
    while a client pages come on later pages; one removed, or changed on a page already read,
    is told by its event (apply the events received while paging after the last page). A
    different ``generation`` than the first page's means the book was reloaded (a login):
    start again.
    """

    QUEUE = "query"
    kind: Annotated[ContactKind, msgspec.Meta(description="friend, group or discuss")]
    after: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=MAX_CURSOR,
            description="0 for the first page, else the next of the previous answer",
        ),
    ] = 0
    max_entries: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=MAX_PAGE_ENTRIES,
            description="most contacts plus members the page holds (at least one contact)",
        ),
    ] = PAGE_ENTRIES


class SearchFriend(_Command, kw_only=True, frozen=True, tag="search_friend"):
    """Friends whose given attributes all equal the given values (text comparison)."""

    QUEUE = "query"
    category: Criterion = None
    client_type: Criterion = None
    displayname: Criterion = None
    face: Criterion = None
    flag: Criterion = None
    id: Criterion = None
    is_vip: Criterion = None
    markname: Criterion = None
    name: Criterion = None
    state: Criterion = None
    uid: Criterion = None
    vip_level: Criterion = None


class SearchGroup(_Command, kw_only=True, frozen=True, tag="search_group"):
    """Groups whose given attributes all equal the given values (text comparison)."""

    QUEUE = "query"
    code: Criterion = None
    createtime: Criterion = None
    displayname: Criterion = None
    id: Criterion = None
    level: Criterion = None
    markname: Criterion = None
    max_admin: Criterion = None
    max_member: Criterion = None
    member_count: Criterion = None
    memo: Criterion = None
    name: Criterion = None
    owner_id: Criterion = None
    owner_uid: Criterion = None
    role: Criterion = None
    uid: Criterion = None


class GetClientInfo(_Command, kw_only=True, frozen=True, tag="get_client_info"):
    """Process and version information of the bridge."""

    QUEUE = "control"


class StopClient(_Command, kw_only=True, frozen=True, tag="stop_client"):
    """Stop the bridge in 3 seconds (state running -> stop, then the process exits)."""

    QUEUE = "control"


class Relogin(_Command, kw_only=True, frozen=True, tag="relogin"):
    """Log the account in again in 3 seconds (contacts reloaded)."""

    QUEUE = "control"


Command = (
    SendFriendMessage
    | SendGroupMessage
    | SendDiscussMessage
    | SendSessMessage
    | KickGroupMember
    | ShutupGroupMember
    | GetUserInfo
    | GetFriendInfo
    | GetGroupInfo
    | GetGroupBasicInfo
    | GetDiscussInfo
    | GetContactsPage
    | SearchFriend
    | SearchGroup
    | GetClientInfo
    | StopClient
    | Relogin
)
COMMAND_TYPES: tuple[type[Command], ...] = Command.__args__
#: The commands of the send queue.
SendCommand = SendFriendMessage | SendGroupMessage | SendDiscussMessage | SendSessMessage


def command_name(cls: type[Command] | Command) -> str:
    """The ``command`` tag of a command class or instance."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


# --- replies -----------------------------------------------------------------------------


class SendReply(msgspec.Struct, kw_only=True):
    """A sync send's result: 0 发送成功, -3 发送结果未知, <0 发送失败, 100-105 not found."""

    code: int
    id: int | None
    info: str | msgspec.UnsetType = msgspec.UNSET
    status: str


class StatusReply(msgspec.Struct, kw_only=True):
    """A code and a status text (kick, shutup, search not found, errors)."""

    code: int
    status: str


class ClientInfo(msgspec.Struct, kw_only=True):
    """get_client_info: the bridge process."""

    account: str
    #: The bridge that answered, which is the account's active one: ``host:pid`` (an addition
    #: to the original, for deployments with standby bridges).
    active: str | None = None
    code: int = 0
    http_debug: int = 0
    log_encoding: str | None = None
    log_level: str
    log_path: str = ""
    os: str
    pid: int
    runtime: int
    starttime: int
    status: str = "success"
    version: str


class StopReply(msgspec.Struct, kw_only=True):
    """stop_client: the process stops 3 seconds later."""

    account: str
    code: int = 0
    pid: int
    runtime: int
    starttime: int
    status: str


class ReloginReply(msgspec.Struct, kw_only=True):
    """Relogin: the account logs in again 3 seconds later."""

    account: str
    code: int = 0
    status: str


class _Page(msgspec.Struct, kw_only=True, tag_field="kind"):
    """A page of get_contacts_page (``kind`` tells which contacts ``items`` holds)."""

    #: The ``after`` of the next page; null: this is the last one.
    next: int | None
    #: Contacts of this kind in the book now.
    total: int
    #: Their members now (0 for friends), for progress.
    members: int
    #: The book this page comes from; it changes when the bridge reloads it (a login).
    generation: str


class FriendPage(_Page, kw_only=True, tag="friend"):
    """A page of friends."""

    items: list[Friend]


class GroupPage(_Page, kw_only=True, tag="group"):
    """A page of groups with their members."""

    items: list[Group]


class DiscussPage(_Page, kw_only=True, tag="discuss"):
    """A page of discuss groups with their members."""

    items: list[Discuss]


ContactsPage = FriendPage | GroupPage | DiscussPage

Reply = (
    SendReply
    | StatusReply
    | ClientInfo
    | StopReply
    | ReloginReply
    | User
    | list[Friend]
    | list[Group]
    | list[GroupBasic]
    | list[Discuss]
    | FriendPage
    | GroupPage
    | DiscussPage
)

#: The reply shapes of each command, for schemas and documentation.
REPLY_TYPES: dict[str, object] = {
    "send_friend_message": SendReply,
    "send_group_message": SendReply,
    "send_discuss_message": SendReply,
    "send_sess_message": SendReply,
    "kick_group_member": StatusReply,
    "shutup_group_member": StatusReply,
    "get_user_info": User,
    "get_friend_info": list[Friend],
    "get_group_info": list[Group],
    "get_group_basic_info": list[GroupBasic],
    "get_discuss_info": list[Discuss],
    "get_contacts_page": ContactsPage,
    "search_friend": list[Friend] | StatusReply,
    "search_group": list[Group] | StatusReply,
    "get_client_info": ClientInfo,
    "stop_client": StopReply,
    "relogin": ReloginReply,
}

#: Code of the reply to a command the bridge could not decode or run (not an Openqq code).
CODE_INVALID_COMMAND = -10


def send_failure(info: str, code: int = -5, msg_id: int | None = None) -> SendReply:
    """A 发送失败 reply with the reason in ``info``."""
    return SendReply(code=code, id=msg_id, info=info, status="发送失败")


def failure_reply(cmd: Command, reason: str, code: int) -> SendReply | StatusReply:
    """The error reply of the right shape for a command that could not be carried out."""
    if cmd.QUEUE == "send":
        return send_failure(reason, code=code)
    return StatusReply(code=code, status=reason)


#: Code of a send whose result is unknown: it may have been sent, or may still be.
CODE_RESULT_UNKNOWN = -3
#: Its status: neither 发送成功 nor 发送失败, which legacy callers read as "not sent".
STATUS_RESULT_UNKNOWN = "发送结果未知"


def unknown_reply(cmd: Command, reason: str) -> SendReply | StatusReply:
    """The reply for a command that may have run, or may still run: a send is never 发送失败.

    Other commands keep code -5 with the reason (``result unknown: ...``) as their status.
    """
    if cmd.QUEUE == "send":
        return SendReply(
            code=CODE_RESULT_UNKNOWN, id=None, info=reason, status=STATUS_RESULT_UNKNOWN
        )
    return StatusReply(code=-5, status=reason)
