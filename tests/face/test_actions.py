"""Every action the face answers: its bus command (exact fields) and its ``data`` (exactly the
fields ``api/public.md`` lists), failures mapped to retcodes. The bus side is a stub that records
commands and answers as the bridge does; the real bus is in test_transports and test_real_bots."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from bridge.adapters.onebot.actions import ActionError, Actions, failure, reply
from bridge.adapters.onebot.translate import MessageIds, to_onebot
from bridge.adapters.openqq.replica import ContactReplica
from bridge.core import commands as c
from bridge.errors import NoRoute, RpcTimeout
from tests.face.test_translate import SELF, T, book, received_group


class StubRpc:
    def __init__(self) -> None:
        self.calls: list[c.Command] = []
        self.answer: Any = c.SendReply(code=0, id=4242, status="发送成功", info="发送正常")
        self.error: Exception | None = None

    async def call(self, account: str, cmd: c.Command, *, timeout: float) -> bytes:
        assert account == "default"
        self.calls.append(cmd)
        if self.error is not None:
            raise self.error
        return msgspec.json.encode(self.answer)


@pytest.fixture
def rpc() -> StubRpc:
    return StubRpc()


@pytest.fixture
def actions(rpc: StubRpc) -> Actions:
    replica = ContactReplica(rpc, "default")  # type: ignore[arg-type]
    replica.book = book()
    replica.ready.set()
    ids = MessageIds()
    to_onebot(received_group(id=555), SELF, T, replica.book, ids)
    return Actions(rpc, replica, ids, "default", timeout=1, online=lambda: True)  # type: ignore[arg-type]


async def call(actions: Actions, action: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        handler, _ = actions.resolve(action)
        out = reply(await handler(params))
    except ActionError as err:
        out = failure(err)
    return msgspec.json.decode(msgspec.json.encode(out))


SENDS = [
    (
        "send_private_msg",
        {"user_id": 20002, "message": "hi"},
        c.SendFriendMessage(uid=20002, content="hi"),
    ),
    (
        "send_private_msg",
        {"user_id": "20002", "message": "a&amp;[CQ:at,qq=all]", "auto_escape": "true"},
        c.SendFriendMessage(uid=20002, content="a&amp;[CQ:at,qq=all]"),
    ),
    (
        "send_group_msg",
        {"group_id": 30003, "message": "[CQ:at,qq=40004] hi &#91;"},
        c.SendGroupMessage(uid=30003, content="@A卡 hi ["),
    ),
    (
        "send_group_msg",
        {
            "group_id": 30003,
            "message": [
                {"type": "reply", "data": {"id": "555"}},
                {"type": "text", "data": {"text": "yes"}},
            ],
        },
        c.SendGroupMessage(uid=30003, content="yes"),
    ),
    (
        "send_msg",
        {
            "message_type": "group",
            "group_id": 30003,
            "message": {"type": "text", "data": {"text": "x"}},
        },
        c.SendGroupMessage(uid=30003, content="x"),
    ),
    ("send_msg", {"user_id": 20002, "message": "p"}, c.SendFriendMessage(uid=20002, content="p")),
    (
        "send_msg",
        {"group_id": "30003", "user_id": 20002, "message": "g"},
        c.SendGroupMessage(uid=30003, content="g"),
    ),
]


@pytest.mark.parametrize(("action", "params", "command"), SENDS)
async def test_sends(
    actions: Actions, rpc: StubRpc, action: str, params: dict[str, Any], command: c.Command
) -> None:
    out = await call(actions, action, params)
    assert out == {
        "status": "ok",
        "retcode": 0,
        "data": {"message_id": 4242},
        "message": "",
        "wording": "",
    }
    assert rpc.calls == [command]


async def test_kick_and_ban(actions: Actions, rpc: StubRpc) -> None:
    rpc.answer = c.StatusReply(code=0, status="success")
    out = await call(
        actions,
        "set_group_kick",
        {"group_id": 30003, "user_id": 40005, "reject_add_request": False},
    )
    assert (out["status"], out["data"]) == ("ok", None)
    out = await call(actions, "set_group_ban", {"group_id": 30003, "user_id": 40005})
    assert (out["status"], out["data"]) == ("ok", None)
    out = await call(actions, "set_group_ban", {"group_id": 30003, "user_id": 40005, "duration": 0})
    assert out["retcode"] == 0
    assert rpc.calls == [
        c.KickGroupMember(group_uid=30003, member_uid=[40005]),
        c.ShutupGroupMember(group_uid=30003, member_uid=[40005], time=1800),
        c.ShutupGroupMember(group_uid=30003, member_uid=[40005], time=0),
    ]
    rpc.answer = c.StatusReply(code=201, status="failure")
    out = await call(actions, "set_group_kick", {"group_id": 30003, "user_id": 40005})
    assert (out["status"], out["retcode"]) == ("failed", 100)


READS: list[tuple[str, dict[str, Any], Any]] = [
    ("get_login_info", {}, {"user_id": SELF, "nickname": "me"}),
    (
        "get_stranger_info",
        {"user_id": 40004},
        {"user_id": 40004, "nickname": "Alice", "sex": "female", "age": 0},
    ),
    ("get_friend_list", {}, [{"user_id": 20002, "nickname": "Fred", "remark": "F"}]),
    (
        "get_group_list",
        {},
        [{"group_id": 30003, "group_name": "群", "member_count": 2, "max_member_count": 200}],
    ),
    (
        "get_group_info",
        {"group_id": "30003"},
        {"group_id": 30003, "group_name": "群", "member_count": 2, "max_member_count": 200},
    ),
    ("can_send_image", {}, {"yes": False}),
    ("can_send_record", {}, {"yes": False}),
    ("get_status", {}, {"online": True, "good": True}),
]
MEMBER_FIELDS = {
    "group_id",
    "user_id",
    "nickname",
    "card",
    "sex",
    "age",
    "area",
    "join_time",
    "last_sent_time",
    "level",
    "role",
    "unfriendly",
    "title",
    "title_expire_time",
    "card_changeable",
}


@pytest.mark.parametrize(("action", "params", "data"), READS)
async def test_reads(
    actions: Actions, rpc: StubRpc, action: str, params: dict[str, Any], data: Any
) -> None:
    out = await call(actions, action, params)
    assert out["status"] == "ok", out
    assert out["data"] == data
    assert rpc.calls == []


async def test_members_version_and_get_msg(actions: Actions) -> None:
    out = await call(actions, "get_group_member_info", {"group_id": 30003, "user_id": 40004})
    assert set(out["data"]) == MEMBER_FIELDS
    assert (out["data"]["card"], out["data"]["role"]) == ("A卡", "admin")
    out = await call(actions, "get_group_member_list", {"group_id": 30003})
    assert [m["user_id"] for m in out["data"]] == [40004, 40005]
    assert all(set(m) == MEMBER_FIELDS for m in out["data"])
    out = await call(actions, "get_version_info", {})
    assert {"app_name", "app_version", "protocol_version"} <= set(out["data"])
    assert out["data"]["protocol_version"] == "v11"
    out = await call(actions, "get_msg", {"message_id": 555})
    assert set(out["data"]) == {
        "time",
        "message_type",
        "message_id",
        "real_id",
        "sender",
        "message",
    }
    assert out["data"]["message"] == [{"type": "text", "data": {"text": "hi [x]"}}]


FAILURES: list[tuple[str, dict[str, Any], int]] = [
    ("get_cookies", {}, 1404),
    ("set_group_whole_ban", {"group_id": 1}, 1404),
    ("send_group_msg", {"message": "x"}, 1400),
    ("send_group_msg", {"group_id": "abc", "message": "x"}, 1400),
    ("send_group_msg", {"group_id": 30003}, 1400),
    ("send_group_msg", {"group_id": 30003, "message": ""}, 1400),
    (
        "send_group_msg",
        {"group_id": 30003, "message": [{"type": "image", "data": {"file": "a"}}]},
        100,
    ),
    ("send_msg", {"message_type": "discuss", "message": "x"}, 1400),
    ("set_group_ban", {"group_id": 1, "user_id": 2, "duration": -1}, 1400),
    ("get_group_info", {"group_id": 1}, 100),
    ("get_group_member_info", {"group_id": 30003, "user_id": 1}, 100),
    ("get_stranger_info", {"user_id": 1}, 100),
    ("get_msg", {"message_id": 1}, 100),
    ("delete_msg", {"message_id": 555}, 100),
]


@pytest.mark.parametrize(("action", "params", "retcode"), FAILURES)
async def test_failures(
    actions: Actions, rpc: StubRpc, action: str, params: dict[str, Any], retcode: int
) -> None:
    out = await call(actions, action, params)
    assert out["status"] == "failed"
    assert out["retcode"] == retcode
    assert out["data"] is None
    assert out["wording"]
    assert out["message"] == out["wording"]
    assert rpc.calls == []


@pytest.mark.parametrize(
    ("answer", "error", "retcode"),
    [
        (c.SendReply(code=101, id=None, status="group not found"), None, 100),
        (c.SendReply(code=-3, id=None, status="发送结果未知", info="x"), None, 200),
        (None, RpcTimeout("no reply"), 200),
        (None, NoRoute("no queue"), 100),
    ],
)
async def test_bus_failures_map_to_retcodes(
    actions: Actions, rpc: StubRpc, answer: Any, error: Exception | None, retcode: int
) -> None:
    rpc.answer, rpc.error = answer, error
    out = await call(actions, "send_group_msg", {"group_id": 30003, "message": "m"})
    assert (out["status"], out["retcode"]) == ("failed", retcode)


async def test_async_suffix_resolves(actions: Actions) -> None:
    _, background = actions.resolve("send_group_msg_async")
    assert background
    _, background = actions.resolve("send_msg_rate_limited")
    assert background
    with pytest.raises(ActionError):
        actions.resolve("nothing_async")
    await asyncio.sleep(0)


async def test_reads_wait_for_the_contacts_then_give_up(actions: Actions) -> None:
    replica = actions._replica
    replica.ready.clear()
    asyncio.get_running_loop().call_soon(replica.ready.set)
    out = await call(actions, "get_login_info", {})
    assert out["status"] == "ok"
    replica.ready.clear()
    actions._timeout = 0.01
    out = await call(actions, "get_friend_list", {})
    assert (out["status"], out["retcode"]) == ("failed", 200)
    assert "still loading" in out["wording"]
