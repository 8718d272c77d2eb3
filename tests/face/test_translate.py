"""Every bus event the face passes on becomes the OneBot v11 event with exactly the fields the
standard lists (``event/message.md``, ``notice.md``, ``request.md``, ``meta.md``); the others
are skipped. Pure: no broker, no sockets."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bridge.adapters.onebot.translate import (
    INT32_MAX,
    MessageIds,
    heartbeat,
    lifecycle,
    to_onebot,
)
from bridge.core import cqcode
from bridge.core import events as ev
from bridge.core.codec import decode_event, encode
from bridge.core.contacts import ContactBook
from bridge.core.events import Segment
from bridge.core.model import Friend, Group, GroupMember, User

SELF = 10001
T = 1_700_000_000
ALICE = GroupMember(id=9, uid=40004, name="Alice", card="A卡", role="admin", sex="female")
BOB = GroupMember(id=8, uid=40005, name="Bob")
GROUP = Group(id=7, uid=30003, name="群", member=[ALICE, BOB], max_member=200)
FRIEND = Friend(id=6, uid=20002, name="Fred", markname="F")

BASE = {"time", "self_id", "post_type"}
MESSAGE = BASE | {
    "message_type",
    "sub_type",
    "message_id",
    "user_id",
    "message",
    "raw_message",
    "font",
    "sender",
}
PRIVATE_SENDER = {"user_id", "nickname", "sex", "age"}
GROUP_SENDER = PRIVATE_SENDER | {"card", "area", "level", "role", "title"}


def book() -> ContactBook:
    b = ContactBook()
    b.load(User(id=SELF, uid=SELF, name="me"), [FRIEND], [GROUP], [])
    return b


def received_group(**kw: Any) -> ev.ReceivedGroupMessage:
    fields: dict[str, Any] = {
        "id": 12345,
        "time": T,
        "content": "hi [x]",
        "sender": "A卡",
        "sender_id": 9,
        "sender_uid": 40004,
        "receiver": "me",
        "receiver_id": SELF,
        "receiver_uid": SELF,
        "group": "群",
        "group_id": 7,
        "group_uid": 30003,
    }
    fields.update(kw)
    return ev.ReceivedGroupMessage(**fields)


def roundtrip(event: ev.Event) -> dict[str, Any] | None:
    """Through the bus codec, as the face sees it, then to OneBot and through JSON."""
    decoded = decode_event(event.KIND, encode(event))
    out = to_onebot(decoded, SELF, T, book(), MessageIds())
    return None if out is None else msgspec.json.decode(msgspec.json.encode(out))


def test_group_message_fields() -> None:
    out = roundtrip(received_group())
    assert out is not None
    assert set(out) == MESSAGE | {"group_id", "anonymous"}
    assert out["post_type"] == "message"
    assert out["message_type"] == "group"
    assert out["sub_type"] == "normal"
    assert out["group_id"] == 30003
    assert out["user_id"] == 40004
    assert out["self_id"] == SELF
    assert out["time"] == T
    assert out["anonymous"] is None
    assert out["message_id"] == 12345
    assert out["message"] == [{"type": "text", "data": {"text": "hi [x]"}}]
    assert out["raw_message"] == "hi &#91;x&#93;"
    assert set(out["sender"]) == GROUP_SENDER
    assert out["sender"]["nickname"] == "Alice"
    assert out["sender"]["card"] == "A卡"
    assert out["sender"]["role"] == "admin"
    assert out["sender"]["sex"] == "female"


def test_onebot_segments_pass_through() -> None:
    segs = [
        Segment(type="reply", data={"id": "77"}),
        Segment(type="at", data={"qq": "10001"}),
        Segment(type="text", data={"text": " look, [this]"}),
        Segment(type="image", data={"file": "a.jpg", "url": "https://x/a.jpg?a=1,b=2"}),
        Segment(type="face", data={"id": "14"}),
    ]
    out = roundtrip(received_group(segments=segs))
    assert out is not None
    assert out["message"] == [{"type": s.type, "data": s.data} for s in segs]
    assert out["raw_message"] == (
        "[CQ:reply,id=77][CQ:at,qq=10001] look, &#91;this&#93;"
        "[CQ:image,file=a.jpg,url=https://x/a.jpg?a=1&#44;b=2][CQ:face,id=14]"
    )
    assert cqcode.decode(out["raw_message"]) == segs


def test_friend_and_sess_messages() -> None:
    friend = ev.ReceivedFriendMessage(
        id=5,
        time=T,
        content="yo",
        sender="Fred",
        sender_id=6,
        sender_uid=20002,
        receiver="me",
        receiver_id=SELF,
        receiver_uid=SELF,
    )
    out = roundtrip(friend)
    assert out is not None
    assert set(out) == MESSAGE
    assert (out["message_type"], out["sub_type"], out["user_id"]) == ("private", "friend", 20002)
    assert set(out["sender"]) == PRIVATE_SENDER
    assert out["sender"]["nickname"] == "Fred"
    sess = ev.ReceivedSessMessage(
        id=6,
        time=T,
        content="hey",
        sender="Bob",
        sender_id=8,
        sender_uid=40005,
        receiver="me",
        receiver_id=SELF,
        receiver_uid=SELF,
        via="group",
        group="群",
        group_id=7,
        group_uid=30003,
    )
    out = roundtrip(sess)
    assert out is not None
    assert set(out) == MESSAGE
    assert (out["message_type"], out["sub_type"]) == ("private", "group")


def test_large_message_ids_fold_into_int32_and_are_remembered() -> None:
    ids = MessageIds(size=2)
    assert MessageIds.to_onebot(77) == 77
    big = 2**40 + 3
    folded = MessageIds.to_onebot(big)
    assert 0 < folded <= INT32_MAX
    assert folded == MessageIds.to_onebot(big)
    out = to_onebot(received_group(id=big), SELF, T, book(), ids)
    assert out is not None
    assert out["message_id"] == folded
    found = ids.find(folded)
    assert found is not None
    assert found.bus_id == big
    for n in (1, 2):
        to_onebot(received_group(id=n), SELF, T, book(), ids)
    assert ids.find(folded) is None  # forgotten past size


NOTICES: list[tuple[ev.Event, dict[str, Any]]] = [
    (ev.NewFriend(params=(FRIEND,)), {"notice_type": "friend_add", "user_id": 20002}),
    (
        ev.NewGroupMember(params=(BOB, GROUP)),
        {
            "notice_type": "group_increase",
            "sub_type": "approve",
            "group_id": 30003,
            "operator_id": 0,
            "user_id": 40005,
        },
    ),
    (
        ev.LoseGroupMember(params=(BOB, GROUP)),
        {
            "notice_type": "group_decrease",
            "sub_type": "leave",
            "group_id": 30003,
            "operator_id": 40005,
            "user_id": 40005,
        },
    ),
    (
        ev.NewGroup(params=(GROUP,)),
        {
            "notice_type": "group_increase",
            "sub_type": "approve",
            "group_id": 30003,
            "operator_id": 0,
            "user_id": SELF,
        },
    ),
    (
        ev.LoseGroup(params=(GROUP,)),
        {
            "notice_type": "group_decrease",
            "sub_type": "kick_me",
            "group_id": 30003,
            "operator_id": 0,
            "user_id": SELF,
        },
    ),
    (
        ev.GroupMemberShutup(params=(BOB, GROUP, 600)),
        {
            "notice_type": "group_ban",
            "sub_type": "ban",
            "group_id": 30003,
            "operator_id": 0,
            "user_id": 40005,
            "duration": 600,
        },
    ),
    (
        ev.GroupMemberShutup(params=(BOB, GROUP, 0)),
        {
            "notice_type": "group_ban",
            "sub_type": "lift_ban",
            "group_id": 30003,
            "operator_id": 0,
            "user_id": 40005,
            "duration": 0,
        },
    ),
    (
        ev.GroupMemberPropertyChange(params=(BOB, "role", "member", "admin")),
        {"notice_type": "group_admin", "sub_type": "set", "group_id": 30003, "user_id": 40005},
    ),
    (
        ev.GroupMemberPropertyChange(params=(ALICE, "role", "admin", "member")),
        {"notice_type": "group_admin", "sub_type": "unset", "group_id": 30003, "user_id": 40004},
    ),
    (
        ev.GroupRecall(params=(GROUP, 40004, 40005, 99)),
        {
            "notice_type": "group_recall",
            "group_id": 30003,
            "user_id": 40005,
            "operator_id": 40004,
            "message_id": 99,
        },
    ),
    (
        ev.FriendRecall(params=(FRIEND, 98)),
        {"notice_type": "friend_recall", "user_id": 20002, "message_id": 98},
    ),
    (
        ev.GroupUpload(
            params=(GROUP, 40005, {"id": "f1", "name": "a.txt", "size": 12, "busid": 102})
        ),
        {
            "notice_type": "group_upload",
            "group_id": 30003,
            "user_id": 40005,
            "file": {"id": "f1", "name": "a.txt", "size": 12, "busid": 102},
        },
    ),
    (
        ev.Notify(params=("poke", 30003, 40005, SELF)),
        {
            "notice_type": "notify",
            "sub_type": "poke",
            "group_id": 30003,
            "user_id": 40005,
            "target_id": SELF,
        },
    ),
    (
        ev.Notify(params=("lucky_king", 30003, 40005, 40004)),
        {
            "notice_type": "notify",
            "sub_type": "lucky_king",
            "group_id": 30003,
            "user_id": 40005,
            "target_id": 40004,
        },
    ),
    (
        ev.Notify(params=("honor", 30003, 40005, None)),
        {
            "notice_type": "notify",
            "sub_type": "honor",
            "group_id": 30003,
            "user_id": 40005,
            "honor_type": "",
        },
    ),
]


@pytest.mark.parametrize(("event", "fields"), NOTICES, ids=lambda x: getattr(x, "KIND", ""))
def test_notices(event: ev.Event, fields: dict[str, Any]) -> None:
    out = roundtrip(event)
    assert out == {"time": T, "self_id": SELF, "post_type": "notice", **fields}


def test_requests() -> None:
    assert roundtrip(ev.FriendRequest(params=(20009, "hi", "flag1"))) == {
        "time": T,
        "self_id": SELF,
        "post_type": "request",
        "request_type": "friend",
        "user_id": 20009,
        "comment": "hi",
        "flag": "flag1",
    }
    assert roundtrip(ev.GroupRequest(params=(30003, 20009, "invite", "join", "flag2"))) == {
        "time": T,
        "self_id": SELF,
        "post_type": "request",
        "request_type": "group",
        "sub_type": "invite",
        "group_id": 30003,
        "user_id": 20009,
        "comment": "join",
        "flag": "flag2",
    }


def test_meta_events() -> None:
    assert roundtrip(ev.Login(params=(0,))) == lifecycle("enable", SELF, T)
    assert roundtrip(ev.Stop()) == lifecycle("disable", SELF, T)
    assert set(lifecycle("connect", SELF, T)) == BASE | {"meta_event_type", "sub_type"}
    beat = heartbeat(SELF, T, 15000, online=True)
    assert set(beat) == BASE | {"meta_event_type", "status", "interval"}
    assert beat["status"] == {"online": True, "good": True}
    assert beat["interval"] == 15000


SKIPPED: list[ev.Event] = [
    ev.StateChange(params=("updating", "running")),
    ev.InputQrcode(params=["/tmp/qr.png", "x"]),
    ev.UpdateGroup(params=(GROUP,)),
    ev.GroupMemberPropertyChange(params=(BOB, "card", "", "new")),
    ev.Notify(params=("whole_ban", 30003, 40004, None)),
    ev.ReceivedDiscussMessage(
        id=1,
        time=T,
        content="x",
        sender="s",
        sender_id=1,
        sender_uid=1,
        receiver="me",
        receiver_id=SELF,
        receiver_uid=SELF,
        discuss="d",
        discuss_id=3,
    ),
    ev.SentGroupMessage(
        id=1,
        time=T,
        content="x",
        sender="me",
        sender_id=SELF,
        sender_uid=SELF,
        code=0,
        info="ok",
        msg="x",
        group="群",
        group_id=7,
        group_uid=30003,
    ),
]


@pytest.mark.parametrize("event", SKIPPED, ids=lambda e: e.KIND)
def test_events_without_a_onebot_counterpart_are_skipped(event: ev.Event) -> None:
    assert roundtrip(event) is None


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("plain", [Segment(type="text", data={"text": "plain"})]),
        ("a&amp;b&#91;c&#93;", [Segment(type="text", data={"text": "a&b[c]"})]),
        (
            "[CQ:at,qq=all] hi",
            [Segment(type="at", data={"qq": "all"}), Segment(type="text", data={"text": " hi"})],
        ),
        (
            "[CQ:share,url=x&#44;y,title=t]",
            [Segment(type="share", data={"url": "x,y", "title": "t"})],
        ),
    ],
)
def test_cq_code_both_ways(text: str, segments: list[Segment]) -> None:
    assert cqcode.decode(text) == segments
    assert cqcode.encode(segments) == text
