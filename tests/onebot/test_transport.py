"""The OneBot link as real implementations drive it: frames, tokens, accounts, back-off.

Each test here failed before its fix (issue 10 numbers in brackets).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest

from bridge.core import commands as c
from bridge.core import events as ev
from bridge.core.model import Group
from bridge.upstream.onebot.account import OneBotAccount
from bridge.upstream.onebot.errors import NotConnected
from tests.fake_onebot import SELF_ID, FakeOneBot, failed
from tests.onebot.conftest import OB, onebot_settings
from tests.onebot.test_inbound_fixtures import FIXTURES
from tests.onebot.test_onebot import group_msg


@asynccontextmanager
async def running(account: OneBotAccount) -> AsyncIterator[list[ev.Event]]:
    """Run an account on its own (no bridge), collecting what it emits."""
    emitted: list[ev.Event] = []

    async def emit(e: ev.Event) -> None:
        emitted.append(e)

    task = asyncio.create_task(account.run(emit))
    try:
        yield emitted
    finally:
        await account.stop()
        await asyncio.wait_for(task, 10)


async def until(pred: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


def ws_url(server: Any) -> str:
    return str(server.make_url("/")).replace("http", "ws", 1)


# [2] go-cqhttp reads text frames only (the fake ignores binary ones, as it does).
async def test_actions_go_out_as_text_frames(ob: OB):
    assert ob.account.state == "running"
    assert ob.fake.binary_frames == 0


# [3] One frame nested 1,000 deep: counted, logged, the next frame still published.
async def test_a_deeply_nested_frame_is_skipped_and_counted(ob: OB):
    await ob.fake.push_raw('{"post_type":"message","message":' + "[" * 1000 + "]" * 1000 + "}")
    await ob.fake.push(group_msg("still here"))
    b = await ob.event(lambda b: b.get("post_type") == "receive_message")
    assert b["content"] == "still here"
    assert ob.account.counters.bad_frames == 1


# [11] A lone UTF-16 surrogate (Node's JSON.stringify of half an emoji) is replaced.
async def test_a_lone_surrogate_is_replaced_and_the_message_published(ob: OB):
    frame = msgspec.json.encode(
        group_msg([{"type": "text", "data": {"text": "hi X"}}], sender={"nickname": "灰X"})
    ).decode()
    await ob.fake.push_raw(frame.replace("X", "\\ud83d"))
    b = await ob.event(lambda b: b.get("post_type") == "receive_message")
    assert b["content"] == "hi \ufffd"
    assert ob.account.counters.bad_frames == 0


# [1] Contacts that never load: sessions back off, state events stay few.
async def test_a_session_failing_while_loading_backs_off(aiohttp_server):
    fake = FakeOneBot()
    fake.script["get_group_list"] = lambda _p: failed(1200, "timeout")
    server = await aiohttp_server(fake.app())
    account = OneBotAccount(
        onebot_settings(ws_url(server), reconnect_first=0.5, reconnect_max=30.0)
    )
    async with running(account) as emitted:
        await asyncio.sleep(3)  # count what happens in 3 s; no timing asserted
        sessions = fake.connections
        changes = sum(isinstance(e, ev.StateChange) for e in emitted)
    # Without back-off this was hundreds of sessions (thousands of state changes).
    assert 1 <= sessions <= 5
    assert changes <= 2 * sessions + 2
    assert account.state == "stop"


def fixture_frame(stem: str, name: str) -> dict[str, Any]:
    cases = msgspec.json.decode((FIXTURES / f"{stem}.json").read_bytes())
    frame: dict[str, Any] = next(c["frame"] for c in cases if c["name"] == name)
    return frame


# [4] NapCat/LLOneBot: a wrong token is a retcode 1403 frame (with or without echo), then close.
@pytest.mark.parametrize("stem", ["napcat", "llonebot"])
async def test_a_token_refused_in_a_frame_is_reported_and_backed_off(aiohttp_server, caplog, stem):
    refusal = fixture_frame(stem, "token_rejected")
    fake = FakeOneBot(token="t0k", token_style="frame", token_frame=refusal)
    server = await aiohttp_server(fake.app())
    account = OneBotAccount(
        onebot_settings(ws_url(server), token="wrong", reconnect_first=0.2, reconnect_max=0.4)
    )
    with caplog.at_level(logging.ERROR, logger="bridge.upstream.onebot"):
        async with running(account):
            await until(lambda: fake.rejected >= 2)
            assert account.state in ("loading", "updating")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        "rejected the access token (retcode 1403: token验证失败); check OPENQQ_ONEBOT_TOKEN" in m
        for m in lines
    ), lines


# [5] NapCat reportSelfMessage: message_sent before the action's answer.
@pytest.mark.parametrize("fake", [FakeOneBot(sent_before_answer=True)])
async def test_an_own_send_reported_before_its_answer_is_published_once(ob: OB):
    reply = await ob.call(c.SendGroupMessage(uid=67890, content="mine"))
    assert reply["code"] == 0
    await ob.fake.push(group_msg("marker"))
    seen = []
    async with asyncio.timeout(5):
        while True:
            b = msgspec.json.decode((await ob.events.get()).body)
            if b.get("post_type") == "receive_message":
                break
            if b.get("post_type") == "send_message":
                seen.append((b["content"], b["source"]))
    assert seen == [("mine", "local")]


# [6] The account going offline and back: state follows, sends refused meanwhile.
async def test_offline_and_online_follow_notices_and_heartbeats(ob: OB):
    def change(old: str, new: str) -> Any:
        return lambda b: b.get("event") == "state_change" and b["params"] == [old, new]

    group = Group(id=67890, uid=67890, name="PERL学习交流")
    # go-cqhttp and NapCat: heartbeats say online false, then true again.
    await ob.fake.push(
        {
            "post_type": "meta_event",
            "meta_event_type": "heartbeat",
            "interval": 30000,
            "status": {"online": False, "good": False},
        }
    )
    await ob.event(change("running", "loading"))
    with pytest.raises(NotConnected):
        await ob.account.send_group(group, "x")
    await ob.fake.push(
        {"post_type": "meta_event", "meta_event_type": "heartbeat", "status": {"online": True}}
    )
    await ob.event(change("loading", "running"))
    # NapCat and Lagrange: a bot_offline notice; Lagrange's heartbeats still say online
    # (they do not undo it), its bot_online notice does.
    await ob.fake.push({"post_type": "notice", "notice_type": "bot_offline", "tag": "被挤下线"})
    await ob.event(change("running", "loading"))
    await ob.fake.push(
        {"post_type": "meta_event", "meta_event_type": "heartbeat", "status": {"online": True}}
    )
    await ob.fake.push(group_msg("marker"))
    await ob.event(lambda b: b.get("post_type") == "receive_message")
    assert ob.account.state == "loading"
    await ob.fake.push({"post_type": "notice", "notice_type": "bot_online", "reason": "Login"})
    await ob.event(change("loading", "running"))
    assert ob.account.state == "running"
    assert (await ob.account.send_group(group, "back")).code == 0


# [7] Reverse WebSocket: the first account pins; another is refused, its frames dropped.
async def test_reverse_websocket_pins_the_account():
    account = OneBotAccount(onebot_settings("ws://unused", mode="reverse", listen=("127.0.0.1", 0)))
    async with running(account) as emitted:
        await until(lambda: account.bound is not None)
        assert account.bound is not None
        host, port = account.bound
        url = f"ws://{host}:{port}/onebot/v11/ws"
        first = FakeOneBot()
        serving = asyncio.create_task(first.connect_reverse(url))
        await until(lambda: account.state == "running")
        other = FakeOneBot(self_id=999)
        assert await other.connect_reverse(url, self_id=999) == 403
        assert account.state == "running"
        assert account.self_id == SELF_ID
        await first.push({**group_msg("foreign"), "self_id": 999})
        await first.push(group_msg("mine"))
        await until(lambda: any(isinstance(e, ev.ReceivedGroupMessage) for e in emitted))
        contents = [e.content for e in emitted if isinstance(e, ev.ReceivedGroupMessage)]
        assert contents == ["mine"]
        assert account.counters.bad_frames == 1
    await asyncio.wait_for(serving, 5)


# [7] Forward: the implementation behind the URL now logs in another account.
async def test_forward_refuses_another_account_than_the_setting(aiohttp_server, caplog):
    fake = FakeOneBot(self_id=999)
    server = await aiohttp_server(fake.app())
    account = OneBotAccount(onebot_settings(ws_url(server), self_id=SELF_ID))
    with caplog.at_level(logging.ERROR, logger="bridge.upstream.onebot"):
        async with running(account):
            await until(lambda: fake.connections >= 2)
            assert account.state != "running"
    assert any(
        "it serves QQ 999, but this bridge serves QQ 123456" in r.getMessage()
        for r in caplog.records
    )


# [10] A lookup that never answers holds later events for lookup_timeout at most.
@pytest.mark.parametrize("onebot_options", [{"action_timeout": 25.0, "lookup_timeout": 0.5}])
async def test_a_slow_lookup_does_not_hold_later_events(ob: OB):
    ob.fake.script["get_group_member_info"] = lambda _p: None  # never answers
    await ob.fake.push(
        {
            "post_type": "notice",
            "notice_type": "group_increase",
            "sub_type": "approve",
            "group_id": 67890,
            "user_id": 3333,
            "operator_id": 0,
        }
    )
    await ob.fake.push(group_msg("right after", user_id=3333))
    # Before the fix the message waited for the action timeout (25 s).
    joined = await ob.event(lambda b: b.get("event") == "new_group_member", timeout=10)
    assert joined["params"][0]["uid"] == 3333
    b = await ob.event(lambda b: b.get("post_type") == "receive_message", timeout=10)
    assert b["content"] == "right after"


# [15] NapCat without set_group_kick_members (1404): kicked one by one.
async def test_batch_kick_falls_back_to_one_by_one(ob: OB):
    ob.fake.script["set_group_kick_members"] = lambda _p: failed(1404, "不支持的Api")
    assert await ob.call(c.KickGroupMember(group_uid=67890, member_uid=[88888, 456789])) == {
        "code": 0,
        "status": "success",
    }
    await ob.fake.next_action("set_group_kick_members")
    first = await ob.fake.next_action("set_group_kick")
    second = await ob.fake.next_action("set_group_kick")
    assert [first["params"]["user_id"], second["params"]["user_id"]] == [88888, 456789]


# [8] Lagrange (IgnoreSelf=false) reports the account's messages as post_type "message".
async def test_lagrange_own_messages_are_sent_messages_never_received(ob: OB):
    reply = await ob.call(c.SendGroupMessage(uid=67890, content="mine"))
    await ob.event(lambda b: b.get("post_type") == "send_message" and b["content"] == "mine")
    own = {"user_id": SELF_ID, "sender": {"user_id": SELF_ID, "nickname": "小灰"}}
    await ob.fake.push({**group_msg("mine"), **own, "message_id": reply["id"]})
    await ob.fake.push({**group_msg("from phone"), **own, "message_id": 4243})
    await ob.fake.push(group_msg("marker"))
    seen = []
    async with asyncio.timeout(5):
        while True:
            b = msgspec.json.decode((await ob.events.get()).body)
            if b.get("post_type") in ("send_message", "receive_message"):
                seen.append((b["post_type"], b["content"], b.get("source")))
            if b.get("content") == "marker":
                break
    assert seen == [
        ("send_message", "from phone", "outer"),
        ("receive_message", "marker", None),
    ]
