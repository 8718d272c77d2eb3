"""bridge/core/messages.py: each builder lays out the fields of its message kind (spec §6.3)."""

from __future__ import annotations

from typing import Any

import msgspec

from bridge.core import messages as msgs
from bridge.core.codec import encode
from bridge.core.events import Segment
from bridge.upstream.sim.world import default_world

W = default_world()
ME = W.user
GROUP = next(g for g in W.groups.values() if g.uid == 552603)
DISCUSS = next(iter(W.discusses.values()))
SAID: dict[str, Any] = {"id": 7, "time": 1700000000, "content": "hi"}
HI = msgs.Said(**SAID)


def as_json(event: object) -> dict[str, object]:
    return msgspec.json.decode(encode(event))


def me_in(name: str) -> dict[str, object]:
    return {"receiver": name, "receiver_id": ME.id, "receiver_uid": ME.uid}


def test_received_friend_shows_the_markname_and_the_account():
    friend = next(f for f in W.friends.values() if f.markname)
    event = msgs.received_friend(HI, msgs.of_friend(friend), msgs.of_user(ME))
    assert as_json(event) == {
        **SAID,
        "sender": friend.markname,
        "sender_id": friend.id,
        "sender_uid": friend.uid,
        **me_in(ME.name),
        "post_type": "receive_message",
        "class": "recv",
        "type": "friend_message",
    }


def test_received_group_names_the_group_and_the_account_there():
    member = next(m for m in GROUP.member if m.id != ME.id)
    segments = [Segment(type="text", data={"text": "hi"})]
    event = msgs.received_group(
        HI._replace(segments=segments),
        msgs.of_member(member, W.friends),
        msgs.of_user(ME, msgs.own_name_in(GROUP, ME)),
        GROUP,
    )
    mine = next(m for m in GROUP.member if m.id == ME.id)
    body = as_json(event)
    assert body["receiver"] == (mine.card or mine.name)
    assert body["segments"] == [{"type": "text", "data": {"text": "hi"}}]
    assert {k: body[k] for k in ("group", "group_id", "group_uid", "sender_id", "type")} == {
        "group": GROUP.markname or GROUP.name,
        "group_id": GROUP.id,
        "group_uid": GROUP.uid,
        "sender_id": member.id,
        "type": "group_message",
    }


def test_own_name_in_a_group_the_account_is_not_listed_in_is_its_nick():
    assert msgs.own_name_in(msgspec.structs.replace(GROUP, member=[]), ME) == ME.name


def test_received_sess_via_discuss_names_the_discuss_and_a_numeric_sender_id():
    dm = DISCUSS.member[1]
    event = msgs.received_sess(HI, msgs.of_discuss_member(dm), msgs.of_user(ME), DISCUSS)
    body = as_json(event)
    assert body["via"] == "discuss"
    assert body["sender_id"] == int(dm.id)
    assert (body["discuss"], body["discuss_id"]) == (DISCUSS.name, DISCUSS.id)
    assert "group" not in body
    assert "group_id" not in body


def test_received_sess_via_an_unknown_group_has_no_group_fields():
    event = msgs.received_sess(HI, msgs.Party("陌生人", 5, 5), msgs.of_user(ME), None)
    body = as_json(event)
    assert body["via"] == "group"
    assert not {"group", "group_id", "group_uid", "discuss", "discuss_id"} & set(body)


REPORT = msgs.Report(**SAID, code=0, info="发送正常", msg="发送成功", from_="code")


def test_sent_discuss_and_sess_report_how_the_send_went():
    body = as_json(msgs.sent_discuss(REPORT, msgs.of_user(ME), DISCUSS))
    assert body == {
        **SAID,
        "sender": ME.name,
        "sender_id": ME.id,
        "sender_uid": ME.uid,
        "post_type": "send_message",
        "class": "send",
        "code": 0,
        "from": "code",
        "info": "发送正常",
        "msg": "发送成功",
        "source": "local",
        "ttl": 2,
        "type": "discuss_message",
        "discuss": DISCUSS.name,
        "discuss_id": DISCUSS.id,
    }
    dm = DISCUSS.member[2]
    sess = as_json(msgs.sent_sess(REPORT, msgs.of_user(ME), msgs.of_discuss_member(dm), DISCUSS))
    assert (sess["via"], sess["receiver_id"], sess["discuss_id"]) == (
        "discuss",
        int(dm.id),
        DISCUSS.id,
    )
    assert "group_id" not in sess


def test_sent_from_elsewhere_keeps_source_and_segments():
    report = REPORT._replace(source="outer", segments=[Segment(type="text")])
    body = as_json(msgs.sent_group(report, msgs.of_user(ME, "卡"), GROUP))
    assert (body["source"], body["sender"], body["group_uid"]) == ("outer", "卡", GROUP.uid)
    assert body["segments"] == [{"type": "text", "data": {}}]
