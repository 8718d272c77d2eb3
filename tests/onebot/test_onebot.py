"""The OneBot v11 upstream against FakeOneBot: connection life, contacts, every mapping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.core import commands as c
from bridge.core.events import Segment
from bridge.upstream.onebot.account import OneBotAccount
from tests.fake_onebot import SELF_ID, FakeOneBot, failed
from tests.onebot.conftest import OB, onebot_settings


def group_msg(message: Any, **kw: Any) -> dict[str, Any]:
    return {
        "post_type": "message",
        "message_type": "group",
        "sub_type": "normal",
        "message_id": 77,
        "group_id": 67890,
        "user_id": 456789,
        "message": message,
        "sender": {"user_id": 456789, "nickname": "灰灰", "card": ""},
        **kw,
    }


# --- connection, states, contacts ---------------------------------------------------------------


async def test_states_login_and_contacts(ob: OB):
    assert ob.account.self_id == SELF_ID
    friends = await ob.call(c.GetFriendInfo())
    assert [(f["id"], f["uid"], f["name"], f["markname"], f["category"]) for f in friends] == [
        (456789, 456789, "灰灰", None, "我的好友"),
        (7891234, 7891234, "测试帐号2", "哈哈", "我的好友"),
    ]
    user = await ob.call(c.GetUserInfo())
    assert (user["id"], user["uid"], user["name"]) == (SELF_ID, SELF_ID, "小灰")
    assert await ob.call(c.GetDiscussInfo()) == []
    # Member lists load in the background, each announced with update_group.
    update = await ob.event(
        lambda b: b.get("event") == "update_group" and b["params"][0]["uid"] == 67890
    )
    group = update["params"][0]
    assert (group["role"], group["owner_uid"]) == ("manage", 45678)
    assert [m["card"] for m in group["member"]] == [None, "小灰卡", None, "甲"]
    groups = await ob.call(c.GetGroupInfo())
    assert len(next(g for g in groups if g["uid"] == 67890)["member"]) == 4


async def test_the_state_sequence_is_published(fake: FakeOneBot, aiohttp_server, ns):
    from bridge.bus.memory import MemoryBus
    from bridge.config import Settings
    from bridge.core.routing import Names
    from bridge.service import Bridge
    from tests.adapter.conftest import subscribe_all

    server = await aiohttp_server(fake.app())
    url = str(server.make_url("/")).replace("http", "ws", 1)
    shared = MemoryBus()
    events = await subscribe_all(MemoryBus(shared.broker), ns)
    bridge = Bridge(
        MemoryBus(shared.broker), Names(ns), OneBotAccount(onebot_settings(url)), Settings()
    )
    task = asyncio.create_task(bridge.run())
    await asyncio.wait_for(bridge.started.wait(), 10)
    bridge.request_stop()
    await asyncio.wait_for(task, 10)
    import msgspec

    seen = []
    while not events.empty():
        b = msgspec.json.decode((await events.get()).body)
        if b.get("event") in ("state_change", "login", "stop"):
            seen.append((b["event"], tuple(b["params"])))
    assert seen == [
        ("state_change", ("init", "loading")),
        ("state_change", ("loading", "updating")),
        ("state_change", ("updating", "running")),
        ("login", (0,)),
        ("state_change", ("running", "stop")),
        ("stop", ()),
    ]


@pytest.mark.parametrize("fake", [FakeOneBot(categories=False, lifecycle=False)])
async def test_works_without_extensions_or_lifecycle_event(ob: OB):
    friends = await ob.call(c.GetFriendInfo())
    assert [f["uid"] for f in friends] == [456789, 7891234]
    actions = []
    while not ob.fake.actions.empty():
        actions.append((await ob.fake.actions.get())["action"])
    assert "get_friend_list" in actions


# --- inbound ----------------------------------------------------------------------------------


async def test_group_message_text_form_and_segments(ob: OB):
    await ob.event(lambda b: b.get("event") == "update_group" and b["params"][0]["uid"] == 67890)
    await ob.fake.push(
        group_msg(
            [
                {"type": "text", "data": {"text": "hi "}},
                {"type": "face", "data": {"id": "14"}},
                {"type": "at", "data": {"qq": "88888"}},
                {"type": "image", "data": {"file": "a.jpg", "url": "https://img.example/a.jpg"}},
                {"type": "reply", "data": {"id": "5"}},
                {"type": "face", "data": {"id": "9999"}},
                {"type": "weird", "data": {}},
            ]
        )
    )
    b = await ob.event(lambda b: b.get("post_type") == "receive_message")
    assert b["type"] == "group_message"
    assert b["content"] == "hi [微笑]@甲 [图片][表情][未识别内容]"
    assert (b["group"], b["group_uid"], b["sender"], b["sender_uid"], b["receiver"]) == (
        "PERL学习交流",
        67890,
        "灰灰",
        456789,
        "小灰卡",
    )
    image = next(s for s in b["segments"] if s["type"] == "image")
    assert image["data"]["url"] == "https://img.example/a.jpg"


async def test_cq_string_messages_are_parsed(ob: OB):
    await ob.fake.push(group_msg("x &#91;y&#93; [CQ:face,id=13][CQ:at,qq=all]"))
    b = await ob.event(lambda b: b.get("post_type") == "receive_message")
    assert b["content"] == "x [y] [呲牙]@全体成员 "


async def test_private_messages_friend_stranger_and_temporary(ob: OB):
    await ob.fake.push(
        {
            "post_type": "message",
            "message_type": "private",
            "sub_type": "friend",
            "message_id": 1,
            "user_id": 7891234,
            "message": [{"type": "text", "data": {"text": "a"}}],
            "sender": {"user_id": 7891234, "nickname": "测试帐号2"},
        }
    )
    b = await ob.event(lambda b: b.get("post_type") == "receive_message")
    assert (b["type"], b["sender"], b["sender_uid"], b["receiver_uid"]) == (
        "friend_message",
        "哈哈",
        7891234,
        SELF_ID,
    )
    await ob.fake.push(
        {
            "post_type": "message",
            "message_type": "private",
            "sub_type": "group",
            "message_id": 2,
            "user_id": 88888,
            "group_id": 67890,
            "message": "b",
            "sender": {"user_id": 88888, "nickname": "路人甲"},
        }
    )
    b = await ob.event(lambda b: b.get("post_type") == "receive_message")
    assert (b["type"], b["via"], b["group_uid"], b["sender"]) == (
        "sess_message",
        "group",
        67890,
        "路人甲",
    )
    await ob.fake.push(
        {
            "post_type": "message",
            "message_type": "private",
            "sub_type": "other",
            "message_id": 3,
            "user_id": 5555,
            "message": "c",
            "sender": {"nickname": "路人"},
        }
    )
    b = await ob.event(lambda b: b.get("post_type") == "receive_message")
    assert (b["type"], b["sender"]) == ("friend_message", "路人")


async def test_own_messages_are_reported_once_and_others_as_outer(ob: OB):
    reply = await ob.call(c.SendGroupMessage(uid=67890, content="mine"))
    await ob.event(lambda b: b.get("post_type") == "send_message" and b["content"] == "mine")
    # The implementation echoes our own send (reportSelfMessage): not a second report.
    await ob.fake.push(
        {
            **group_msg("mine"),
            "post_type": "message_sent",
            "message_id": reply["id"],
            "user_id": SELF_ID,
        }
    )
    # A message sent from the phone is reported, as the original did, with source "outer".
    await ob.fake.push(
        {
            **group_msg("from phone"),
            "post_type": "message_sent",
            "message_id": 4242,
            "user_id": SELF_ID,
        }
    )
    b = await ob.event(lambda b: b.get("post_type") == "send_message")
    assert (b["content"], b["source"], b["info"]) == ("from phone", "outer", "来自其他设备")


# --- notices ----------------------------------------------------------------------------------


async def notice(ob: OB, frame: dict[str, Any], name: str) -> dict[str, Any]:
    await ob.fake.push({"post_type": "notice", **frame})
    return await ob.event(lambda b: b.get("event") == name)


async def test_member_join_leave_kick_and_the_account_itself(ob: OB):
    await ob.event(lambda b: b.get("event") == "update_group" and b["params"][0]["uid"] == 67890)
    ob.fake.members[67890].append(
        {"user_id": 3333, "nickname": "新人", "card": "新卡", "role": "member"}
    )
    b = await notice(
        ob,
        {
            "notice_type": "group_increase",
            "sub_type": "approve",
            "group_id": 67890,
            "user_id": 3333,
            "operator_id": 0,
        },
        "new_group_member",
    )
    member, group = b["params"]
    assert (member["uid"], member["card"]) == (3333, "新卡")
    assert 3333 in [m["uid"] for m in group["member"]]
    b = await notice(
        ob,
        {
            "notice_type": "group_decrease",
            "sub_type": "kick",
            "group_id": 67890,
            "user_id": 88888,
            "operator_id": 45678,
        },
        "lose_group_member",
    )
    member, group = b["params"]
    assert (member["uid"], member["card"]) == (88888, "甲")
    assert 88888 not in [m["uid"] for m in group["member"]]
    b = await notice(
        ob,
        {
            "notice_type": "group_decrease",
            "sub_type": "kick_me",
            "group_id": 552603,
            "user_id": SELF_ID,
            "operator_id": 1,
        },
        "lose_group",
    )
    assert b["params"][0]["uid"] == 552603
    assert 552603 not in [g["uid"] for g in await ob.call(c.GetGroupBasicInfo())]
    b = await notice(
        ob,
        {
            "notice_type": "group_increase",
            "sub_type": "invite",
            "group_id": 552603,
            "user_id": SELF_ID,
        },
        "new_group",
    )
    assert b["params"][0]["name"] == "Mojo-Webqq开发"


async def test_friend_add_ban_recall_admin_card_notify_upload(ob: OB):
    await ob.event(lambda b: b.get("event") == "update_group" and b["params"][0]["uid"] == 67890)
    ob.fake.friends.append({"user_id": 2020, "nickname": "新朋友", "remark": ""})
    b = await notice(ob, {"notice_type": "friend_add", "user_id": 2020}, "new_friend")
    assert b["params"][0]["name"] == "新朋友"
    assert (await ob.call(c.SendFriendMessage(uid=2020, content="hi")))["code"] == 0
    b = await notice(
        ob,
        {
            "notice_type": "group_ban",
            "sub_type": "ban",
            "group_id": 67890,
            "user_id": 88888,
            "operator_id": SELF_ID,
            "duration": 600,
        },
        "group_member_shutup",
    )
    assert (b["params"][0]["uid"], b["params"][2]) == (88888, 600)
    b = await notice(
        ob,
        {
            "notice_type": "group_ban",
            "sub_type": "lift_ban",
            "group_id": 67890,
            "user_id": 88888,
            "operator_id": SELF_ID,
            "duration": 0,
        },
        "group_member_shutup",
    )
    assert b["params"][2] == 0
    b = await notice(
        ob,
        {
            "notice_type": "group_recall",
            "group_id": 67890,
            "user_id": 456789,
            "operator_id": 45678,
            "message_id": 99,
        },
        "group_recall",
    )
    assert b["params"][1:] == [45678, 456789, 99]
    b = await notice(
        ob, {"notice_type": "friend_recall", "user_id": 456789, "message_id": 98}, "friend_recall"
    )
    assert (b["params"][0]["uid"], b["params"][1]) == (456789, 98)
    b = await notice(
        ob,
        {"notice_type": "group_admin", "sub_type": "set", "group_id": 67890, "user_id": 456789},
        "group_member_property_change",
    )
    assert b["params"][1:] == ["role", "member", "admin"]
    b = await notice(
        ob,
        {
            "notice_type": "group_card",
            "group_id": 67890,
            "user_id": 456789,
            "card_new": "老灰",
            "card_old": "",
        },
        "group_member_property_change",
    )
    assert (b["params"][0]["card"], b["params"][1:]) == ("老灰", ["card", None, "老灰"])
    b = await notice(
        ob,
        {
            "notice_type": "notify",
            "sub_type": "poke",
            "group_id": 67890,
            "user_id": 456789,
            "target_id": SELF_ID,
        },
        "notify",
    )
    assert b["params"] == ["poke", 67890, 456789, SELF_ID]
    b = await notice(
        ob,
        {
            "notice_type": "group_upload",
            "group_id": 67890,
            "user_id": 456789,
            "file": {"id": "f1", "name": "a.txt", "size": 3, "busid": 102},
        },
        "group_upload",
    )
    assert b["params"][2]["name"] == "a.txt"


async def test_requests(ob: OB):
    await ob.fake.push(
        {
            "post_type": "request",
            "request_type": "friend",
            "user_id": 42,
            "comment": "加我",
            "flag": "f1",
        }
    )
    b = await ob.event(lambda b: b.get("event") == "friend_request")
    assert b["params"] == [42, "加我", "f1"]
    await ob.fake.push(
        {
            "post_type": "request",
            "request_type": "group",
            "sub_type": "add",
            "group_id": 67890,
            "user_id": 43,
            "comment": "",
            "flag": "f2",
        }
    )
    b = await ob.event(lambda b: b.get("event") == "group_request")
    assert b["params"] == [67890, 43, "add", "", "f2"]


# --- outbound ---------------------------------------------------------------------------------


async def test_sends_map_to_onebot_actions(ob: OB):
    reply = await ob.call(
        c.SendFriendMessage(displayname="哈哈", content="a[CQ:face,id=1]&,[微笑]")
    )
    assert (reply["code"], reply["status"], reply["info"]) == (0, "发送成功", "发送正常")
    a = await ob.fake.next_action("send_private_msg")
    assert a["params"] == {
        "user_id": 7891234,
        "message": [
            {"type": "text", "data": {"text": "a[CQ:face,id=1]&,"}},
            {"type": "face", "data": {"id": "14"}},
        ],
    }
    sent = await ob.event(lambda b: b.get("post_type") == "send_message")
    assert sent["id"] == reply["id"]
    await ob.call(c.SendGroupMessage(uid=67890, content="g"))
    a = await ob.fake.next_action("send_group_msg")
    assert a["params"] == {"group_id": 67890, "message": [{"type": "text", "data": {"text": "g"}}]}
    await ob.call(c.SendSessMessage(group_uid=67890, uid=88888, content="s"))
    a = await ob.fake.next_action("send_private_msg")
    assert (a["params"]["user_id"], a["params"]["group_id"]) == (88888, 67890)
    assert await ob.call(c.SendDiscussMessage(id=1, content="d")) == {
        "code": 102,
        "id": None,
        "status": "discuss not found",
    }


async def test_sends_with_segments_go_out_as_the_array_given(ob: OB):
    segments = [
        Segment(type="reply", data={"id": "77"}),
        Segment(type="image", data={"file": "base64://AAAA", "cache": True}),
        Segment(type="text", data={"text": "[微笑] as text"}),
    ]
    cmd = c.SendGroupMessage(uid=67890, content="[图片][微笑] as text", segments=segments)
    reply = await ob.call(cmd)
    assert reply["code"] == 0
    a = await ob.fake.next_action("send_group_msg")
    assert a["params"] == {
        "group_id": 67890,
        "message": [
            {"type": "reply", "data": {"id": "77"}},
            {"type": "image", "data": {"file": "base64://AAAA", "cache": True}},
            {"type": "text", "data": {"text": "[微笑] as text"}},
        ],
    }
    sent = await ob.event(lambda b: b.get("post_type") == "send_message")
    assert sent["content"] == "[图片][微笑] as text"
    assert sent["segments"] == a["params"]["message"]
    friend = [Segment(type="record", data={"file": "v.amr"})]
    await ob.call(c.SendFriendMessage(uid=7891234, content="[语音]", segments=friend))
    a = await ob.fake.next_action("send_private_msg")
    assert a["params"]["message"] == [{"type": "record", "data": {"file": "v.amr"}}]


async def test_kick_and_shutup(ob: OB):
    assert await ob.call(c.KickGroupMember(group_uid=67890, member_uid=[88888, 456789])) == {
        "code": 0,
        "status": "success",
    }
    a = await ob.fake.next_action("set_group_kick_members")
    assert a["params"] == {
        "group_id": 67890,
        "user_id": [88888, 456789],
        "reject_add_request": False,
    }
    assert await ob.call(c.ShutupGroupMember(group_uid=67890, member_uid=[88888], time=120)) == {
        "code": 0,
        "status": "success",
    }
    a = await ob.fake.next_action("set_group_ban")
    assert a["params"] == {"group_id": 67890, "user_id": 88888, "duration": 120}


@pytest.mark.parametrize("fake", [FakeOneBot(app_name="LLOneBot")])
async def test_kick_one_by_one_without_the_batch_extension(ob: OB):
    await ob.call(c.KickGroupMember(group_uid=67890, member_uid=[88888, 456789]))
    first, second = (
        await ob.fake.next_action("set_group_kick"),
        await ob.fake.next_action("set_group_kick"),
    )
    assert [first["params"]["user_id"], second["params"]["user_id"]] == [88888, 456789]


async def test_failed_actions_become_openqq_errors_and_risk_control_is_reported(ob: OB):
    ob.fake.script["send_group_msg"] = lambda _p: failed(1200, "发送失败，账号可能被风控")
    reply = await ob.call(c.SendGroupMessage(uid=67890, content="x"))
    assert reply == {
        "code": -5,
        "id": 0,
        "info": "retcode 1200: 发送失败，账号可能被风控",
        "status": "发送失败",
    }
    risk = await ob.event(lambda b: b.get("event") == "risk_control")
    assert risk["params"] == ["send_group_msg", 1200, "发送失败，账号可能被风控", 67890]
    ob.fake.script["set_group_kick"] = lambda _p: failed(102, "no permission")
    ob.fake.script["set_group_kick_members"] = lambda _p: failed(102, "no permission")
    assert await ob.call(c.KickGroupMember(group_uid=67890, member_uid=[88888])) == {
        "code": 201,
        "status": "failure",
    }


async def test_a_send_that_times_out_fails_and_is_not_retried(ob: OB):
    ob.fake.script["send_group_msg"] = lambda _p: None  # never answers
    reply = await ob.call(c.SendGroupMessage(uid=67890, content="slow"), timeout=10)
    assert (reply["code"], reply["status"]) == (-3, "发送结果未知")
    assert "may have been delivered" in reply["info"]
    await ob.fake.next_action("send_group_msg")
    await asyncio.sleep(0.3)
    assert all(
        f["action"] != "send_group_msg"
        for f in [ob.fake.actions.get_nowait() for _ in range(ob.fake.actions.qsize())]
    )


# --- connection loss ----------------------------------------------------------------------------


async def test_drop_and_restore_goes_back_to_running_and_loses_nothing_after(ob: OB):
    await ob.fake.drop()
    await ob.event(
        lambda b: b.get("event") == "state_change" and b["params"] == ["running", "loading"]
    )
    await ob.event(
        lambda b: b.get("event") == "state_change" and b["params"] == ["loading", "updating"]
    )
    await ob.event(
        lambda b: b.get("event") == "state_change" and b["params"] == ["updating", "running"]
    )
    await ob.event(lambda b: b.get("event") == "login")
    for i in range(5):
        await ob.fake.push(group_msg(f"after {i}", message_id=100 + i))
    got = [
        (await ob.event(lambda b: b.get("post_type") == "receive_message"))["content"]
        for _ in range(5)
    ]
    assert got == [f"after {i}" for i in range(5)]
    assert ob.fake.connections == 2
    assert (await ob.call(c.SendGroupMessage(uid=67890, content="back")))["code"] == 0


async def test_wrong_token_is_rejected_and_retried(aiohttp_server):
    fake = FakeOneBot(token="t0k")
    server = await aiohttp_server(fake.app())
    url = str(server.make_url("/")).replace("http", "ws", 1)
    account = OneBotAccount(onebot_settings(url, token="wrong", reconnect_max=0.1))
    events: list[Any] = []

    async def emit(e: Any) -> None:
        events.append(e)

    task = asyncio.create_task(account.run(emit))
    async with asyncio.timeout(5):
        while fake.rejected < 3:
            await asyncio.sleep(0.05)
    assert account.state == "loading"
    await account.stop()
    await asyncio.wait_for(task, 5)
    good = OneBotAccount(onebot_settings(url, token="t0k"))
    task = asyncio.create_task(good.run(emit))
    async with asyncio.timeout(5):
        while good.state != "running":
            await asyncio.sleep(0.05)
    await good.stop()
    await asyncio.wait_for(task, 5)


# --- reverse WebSocket ----------------------------------------------------------------------------


async def test_reverse_websocket_checks_token_role_and_self_id():
    account = OneBotAccount(
        onebot_settings("ws://unused", mode="reverse", listen=("127.0.0.1", 0), token="rv")
    )
    events: list[Any] = []

    async def emit(e: Any) -> None:
        events.append(e)

    task = asyncio.create_task(account.run(emit))
    async with asyncio.timeout(5):
        while account.bound is None:
            await asyncio.sleep(0.02)
    host, port = account.bound
    url = f"ws://{host}:{port}/onebot/v11/ws"
    fake = FakeOneBot()
    assert await fake.connect_reverse(url, token="nope") == 403
    assert await fake.connect_reverse(url) == 401
    assert await fake.connect_reverse(url, token="rv", role="Event") == 400
    serving = asyncio.create_task(fake.connect_reverse(url, token="rv"))
    async with asyncio.timeout(5):
        while account.state != "running":
            await asyncio.sleep(0.02)
    assert account.self_id == SELF_ID
    await account.stop()
    await asyncio.wait_for(task, 5)
    assert await asyncio.wait_for(serving, 5) == 101


async def test_a_silent_connection_is_closed_by_the_heartbeat_watchdog(ob: OB):
    # The implementation announces 200 ms heartbeats, then goes quiet with the socket open.
    await ob.fake.push(
        {
            "post_type": "meta_event",
            "meta_event_type": "heartbeat",
            "interval": 200,
            "status": {"online": True, "good": True},
        }
    )
    await ob.event(lambda b: b.get("params") == ["running", "loading"], timeout=5)
    await ob.event(lambda b: b.get("params") == ["updating", "running"], timeout=5)
    # The new connection has announced no heartbeat: the watchdog leaves it alone.
    await asyncio.sleep(1.0)
    assert ob.fake.connections == 2
    assert ob.account.state == "running"


async def test_a_kick_without_answer_is_not_tried_again(ob: OB):
    ob.fake.script["set_group_kick_members"] = lambda _p: None  # never answers
    reply = await ob.call(
        c.KickGroupMember(group_uid=67890, member_uid=[88888, 456789]), timeout=15
    )
    assert reply["code"] == -5
    assert reply["status"].startswith("result unknown: set_group_kick_members: no answer")
    await ob.fake.next_action("set_group_kick_members")
    await asyncio.sleep(0.5)
    later = [ob.fake.actions.get_nowait()["action"] for _ in range(ob.fake.actions.qsize())]
    assert "set_group_kick_members" not in later


async def test_a_dissolved_group_leaves_the_contact_book(ob: OB):
    # LLOneBot group_dismiss; NapCat group_decrease disband with user_id 0.
    b = await notice(
        ob, {"notice_type": "group_dismiss", "group_id": 552603, "user_id": 45678}, "lose_group"
    )
    assert b["params"][0]["uid"] == 552603
    b = await notice(
        ob,
        {"notice_type": "group_decrease", "sub_type": "disband", "group_id": 67890, "user_id": 0},
        "lose_group",
    )
    assert b["params"][0]["uid"] == 67890
    assert await ob.call(c.GetGroupBasicInfo()) == []
