"""The bridge with the simulated account, on the in-memory bus and on RabbitMQ alike."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

import aiohttp
import msgspec
import pytest

from bridge.bus.base import REASON_HEADER, Bus, Delivery, OutMessage
from bridge.bus.rpc import RpcClient
from bridge.bus.topology import declare_exchanges
from bridge.config import Settings
from bridge.core import commands as c
from bridge.core.routing import Names
from bridge.errors import BufferFull
from bridge.service import Bridge
from bridge.store import SqliteRecord
from bridge.upstream.sim.account import SimulatedAccount
from bridge.upstream.sim.settings import SimSettings
from tests.conftest import ACCOUNT, running_bridge, sim_url


async def subscribe(bus: Bus, ns: str, pattern: str, exchange: str = "events"):
    names = Names(ns)
    await declare_exchanges(bus, names)
    q = await bus.declare_queue("", exclusive=True)
    await bus.bind(q, getattr(names, exchange), pattern)
    got: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handler(d: Delivery) -> None:
        await d.ack()
        await got.put(d)

    await bus.consume(q, handler, prefetch=100)
    return got


async def take(q: asyncio.Queue[Delivery], timeout: float = 5.0) -> Delivery:
    async with asyncio.timeout(timeout):
        return await q.get()


def body(d: Delivery) -> Any:
    return msgspec.json.decode(d.body)


async def until(q: asyncio.Queue[Delivery], pred, timeout: float = 5.0) -> Delivery:
    async with asyncio.timeout(timeout):
        while True:
            d = await q.get()
            if pred(body(d)):
                return d


async def inject(sim: SimulatedAccount, payload: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(sim_url(sim, "/sim/inject"), json=payload) as r,
    ):
        return r.status, await r.json()


@pytest.fixture
async def env(bus_factory, ns, tmp_path):
    bus, client_bus = await bus_factory(), await bus_factory()
    events = await subscribe(client_bus, ns, "#")
    rpc = RpcClient(client_bus, Names(ns))
    async with running_bridge(bus, ns, tmp_path) as (bridge, sim):
        await rpc.start()
        yield {"bus": client_bus, "rpc": rpc, "events": events, "bridge": bridge, "sim": sim}
        await rpc.close()


async def call(env, cmd: c.Command, **kw) -> Any:
    return msgspec.json.decode(await env["rpc"].call(ACCOUNT, cmd, **kw))


async def test_login_states_qrcode_and_files(env, tmp_path):
    events = env["events"]
    seen = []
    async with asyncio.timeout(5):
        while True:
            b = body(await events.get())
            seen.append(b)
            if b.get("event") == "login":
                break
    states = [tuple(b["params"]) for b in seen if b["event"] == "state_change"]
    assert states == [
        ("init", "loading"),
        ("loading", "scaning"),
        ("scaning", "confirming"),
        ("confirming", "updating"),
        ("updating", "running"),
    ]
    qr = next(b for b in seen if b["event"] == "input_qrcode")
    png = base64.b64decode(qr["params"][1])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert all(len(line) <= 76 for line in qr["params"][1].splitlines())
    assert seen[-1] == {"event": "login", "params": [1], "post_type": "event"}
    state = msgspec.json.decode((tmp_path / f"mojo_webqq_state_{ACCOUNT}.json").read_bytes())
    assert (state["state"], state["previous_state"]) == ("running", "updating")
    assert not (tmp_path / f"mojo_webqq_qrcode_{ACCOUNT}.png").exists()


async def test_injected_group_message_is_published_with_properties(env):
    status, answer = await inject(
        env["sim"],
        {"type": "group_message", "group_uid": 67890, "sender_uid": 456789, "content": "hi"},
    )
    assert status == 200, answer
    d = await until(env["events"], lambda b: b.get("post_type") == "receive_message")
    b = body(d)
    assert d.routing_key == "receive_message.group_message.default"
    assert d.type == "receive_message.group_message"
    assert d.headers["account"] == ACCOUNT
    assert d.message_id and d.app_id == "openqq-bridge"
    assert b == answer["event"]
    assert {k: b[k] for k in ("class", "content", "group", "group_uid", "sender", "receiver")} == {
        "class": "recv",
        "content": "hi",
        "group": "PERL学习交流",
        "group_uid": 67890,
        "sender": "灰灰",
        "receiver": "小灰卡",
    }


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        (
            {"type": "group_message", "group_uid": 1, "sender_uid": 456789, "content": "x"},
            404,
            "group 1 not found",
        ),
        (
            {"type": "group_message", "group_uid": 67890, "sender_uid": 1, "content": "x"},
            404,
            "member 1 not in group 67890",
        ),
        (
            {"type": "friend_message", "sender_uid": 456789, "content": "x", "extra": 1},
            400,
            "extra",
        ),
        ({"type": "teleport"}, 400, "$.type"),
        ({"type": "friend_message", "sender_uid": "abc", "content": "x"}, 400, "$.sender_uid"),
        (
            {"type": "friend_property_change", "uid": 456789, "property": "id", "value": 1},
            400,
            "property 'id'",
        ),
    ],
)
async def test_bad_injects_get_clear_errors(env, payload, status, fragment):
    got_status, answer = await inject(env["sim"], payload)
    assert got_status == status
    assert fragment in answer["status"]


async def test_send_command_replies_and_reports(env):
    reply = await call(env, c.SendGroupMessage(uid=67890, content="你好<回复>"))
    assert reply["code"] == 0
    assert (reply["status"], reply["info"]) == ("发送成功", "发送正常")
    d = await until(env["events"], lambda b: b.get("post_type") == "send_message")
    b = body(d)
    assert d.routing_key == "send_message.group_message.default"
    assert b["id"] == reply["id"]
    assert b["content"] == "你好＜回复＞"
    assert (b["from"], b["sender"], b["group_uid"], b["msg"]) == (
        "api",
        "小灰卡",
        67890,
        "发送成功",
    )


async def test_friend_discuss_and_sess_sends(env):
    cases: list[tuple[c.Command, str]] = [
        (c.SendFriendMessage(displayname="哈哈", content="a"), "friend_message"),
        (c.SendDiscussMessage(id=4118239384, content="b"), "discuss_message"),
        (c.SendSessMessage(group_uid=67890, uid=88888, content="c"), "sess_message"),
        (c.SendSessMessage(discuss_id=4118239384, uid=7891234, content="d"), "sess_message"),
    ]
    for cmd, kind in cases:
        reply = await call(env, cmd)
        assert reply["status"] == "发送成功", (cmd, reply)
        d = await until(env["events"], lambda b: b.get("post_type") == "send_message")
        assert body(d)["type"] == kind


@pytest.mark.parametrize(
    ("cmd", "reply"),
    [
        (
            c.SendFriendMessage(uid=1, content="x"),
            {"code": 100, "id": None, "status": "friend not found"},
        ),
        (c.SendFriendMessage(content="x"), {"code": 100, "id": None, "status": "friend not found"}),
        (
            c.SendGroupMessage(id=2617047292, uid=552603, content="x"),
            {"code": 101, "id": None, "status": "group not found"},
        ),
        (
            c.SendDiscussMessage(id=1, content="x"),
            {"code": 102, "id": None, "status": "discuss not found"},
        ),
        (
            c.SendSessMessage(group_uid=67890, uid=1, content="x"),
            {"code": 103, "id": None, "status": "group member not found"},
        ),
        (
            c.SendSessMessage(discuss_id=4118239384, uid=1, content="x"),
            {"code": 104, "id": None, "status": "discuss member not found"},
        ),
        (
            c.SendSessMessage(uid=1, content="x"),
            {"code": 105, "id": None, "status": "discuss member or group member  not found"},
        ),
        (
            c.SendGroupMessage(uid=67890, content=""),
            {
                "code": -5,
                "id": None,
                "info": "消息内容为空 (content is empty)",
                "status": "发送失败",
            },
        ),
    ],
)
async def test_send_errors_are_openqq_replies(env, cmd, reply):
    assert await call(env, cmd) == reply


async def test_kick_changes_the_world_and_reports(env):
    rpc_reply = await call(env, c.KickGroupMember(group_uid=67890, member_uid=[88888]))
    assert rpc_reply == {"code": 0, "status": "success"}
    d = await until(env["events"], lambda b: b.get("event") == "lose_group_member")
    member, group = body(d)["params"]
    assert member["uid"] == 88888
    assert 88888 not in [m["uid"] for m in group["member"]]
    groups = await call(env, c.GetGroupInfo())
    perl = next(g for g in groups if g["uid"] == 67890)
    assert 88888 not in [m["uid"] for m in perl["member"]]


@pytest.mark.parametrize(
    ("cmd", "reply"),
    [
        (
            c.KickGroupMember(group_uid=1, member_uid=[88888]),
            {"code": 100, "status": "object not found"},
        ),
        (c.KickGroupMember(member_uid=[88888]), {"code": 100, "status": "object not found"}),
        (
            c.KickGroupMember(group_uid=67890, member_uid=[]),
            {"code": 200, "status": "member id empty"},
        ),
        (
            c.KickGroupMember(group_uid=67890, member_id=[], member_uid=[88888]),
            {"code": 200, "status": "member id empty"},
        ),
        (
            c.KickGroupMember(group_uid=67890, member_uid=[88888, 999]),
            {"code": 100, "status": "member 999 not found"},
        ),
        (
            c.KickGroupMember(group_uid=67890, member_uid=[45678]),
            {"code": 201, "status": "failure"},
        ),
        (
            c.ShutupGroupMember(group_uid=67890, member_uid=[88888], time=30),
            {"code": 400, "status": "shutup time missing or error"},
        ),
        (
            c.ShutupGroupMember(group_uid=67890, member_uid=[123456], time=60),
            {"code": 201, "status": "failure"},
        ),
    ],
)
async def test_kick_and_shutup_errors(env, cmd, reply):
    assert await call(env, cmd) == reply


async def test_shutup_reports_the_mute(env):
    assert await call(
        env, c.ShutupGroupMember(group_id=2617047292, member_id=[2000000001], time=120)
    ) == {
        "code": 0,
        "status": "success",
    }
    d = await until(env["events"], lambda b: b.get("event") == "group_member_shutup")
    member, group, seconds = body(d)["params"]
    assert (member["uid"], group["uid"], seconds) == (88888, 67890, 120)


async def test_reads_and_searches(env):
    user = await call(env, c.GetUserInfo())
    assert (user["name"], user["uid"]) == ("小灰", 123456)
    friends = await call(env, c.GetFriendInfo())
    assert [f["uid"] for f in friends] == [456789, 1234567, 7891234]
    basic = await call(env, c.GetGroupBasicInfo())
    assert all("member" not in g for g in basic)
    assert [g["uid"] for g in basic] == [67890, 552603]
    discuss = await call(env, c.GetDiscussInfo())
    assert discuss[0]["member"][0]["id"] == "4072574066"
    assert await call(env, c.SearchFriend(markname="哈哈")) == [friends[2]]
    assert await call(env, c.SearchFriend(uid="7891234", state="offline")) == [friends[2]]
    assert await call(env, c.SearchFriend(uid=1)) == {"code": 100, "status": "object not found"}
    assert await call(env, c.SearchFriend()) == {"code": 100, "status": "object not found"}
    assert [g["uid"] for g in await call(env, c.SearchGroup(role="manage"))] == [67890]


async def test_injected_contact_events_update_reads(env):
    status, _ = await inject(
        env["sim"], {"type": "new_group_member", "group_uid": 552603, "uid": 3333, "name": "新人"}
    )
    assert status == 200
    d = await until(env["events"], lambda b: b.get("event") == "new_group_member")
    assert body(d)["params"][0]["name"] == "新人"
    reply = await call(env, c.SendSessMessage(group_uid=552603, uid=3333, content="欢迎"))
    assert reply["code"] == 0
    status, _ = await inject(
        env["sim"],
        {"type": "friend_property_change", "uid": 456789, "property": "markname", "value": "老灰"},
    )
    assert status == 200
    assert (await call(env, c.SendFriendMessage(displayname="老灰", content="x")))["code"] == 0


async def test_client_info_and_relogin(env):
    info = await call(env, c.GetClientInfo())
    assert info["account"] == ACCOUNT and info["code"] == 0 and info["status"] == "success"
    assert info["active"] == f"{socket.gethostname()}:{os.getpid()}"
    assert set(info) == {
        "account",
        "active",
        "code",
        "http_debug",
        "log_encoding",
        "log_level",
        "log_path",
        "os",
        "pid",
        "runtime",
        "starttime",
        "status",
        "version",
    }
    reply = await call(env, c.Relogin())
    assert reply["status"].endswith("will relogin in 3 seconds")
    d = await until(env["events"], lambda b: b.get("params") == ["running", "loading"])
    assert d.type == "event.state_change"
    await until(env["events"], lambda b: b.get("event") == "login")
    assert (await call(env, c.SendGroupMessage(uid=67890, content="back")))["code"] == 0


async def test_stop_client_stops_the_bridge(bus_factory, ns, tmp_path):
    bus = await bus_factory()
    events = await subscribe(await bus_factory(), ns, "event.#")
    sim = SimulatedAccount(SimSettings(listen=None, login_delay=0))
    bridge = Bridge(bus, Names(ns), sim, Settings(), control_delay=0.05)
    task = asyncio.create_task(bridge.run())
    rpc = RpcClient(bus, Names(ns))
    await asyncio.wait_for(bridge.started.wait(), 5)
    await rpc.start()
    reply = msgspec.json.decode(await rpc.call(ACCOUNT, c.StopClient()))
    assert reply["status"].endswith("will stop in 3 seconds")
    await asyncio.wait_for(task, 10)
    await rpc.close()
    await until(events, lambda b: b.get("params") == ["running", "stop"])
    await until(events, lambda b: b.get("event") == "stop")


async def test_undecodable_command_is_dead_lettered_and_bridge_keeps_serving(env, ns):
    dead = await subscribe(env["bus"], ns, "#", exchange="dead")
    replies = env["bus"]
    reply_q = await replies.declare_queue("", exclusive=True)
    got: asyncio.Queue[Delivery] = asyncio.Queue()

    async def on_reply(d: Delivery) -> None:
        await d.ack()
        await got.put(d)

    await replies.consume(reply_q, on_reply, prefetch=10)
    await replies.publish(
        Names(ns).commands,
        f"send.{ACCOUNT}",
        OutMessage(body=b"{not json", message_id="bad-1", reply_to=reply_q, correlation_id="k1"),
        mandatory=True,
    )
    d = await take(dead)
    assert d.body == b"{not json"
    assert d.message_id == "bad-1"
    assert "invalid command" in str(d.headers[REASON_HEADER])
    r = await take(got)
    assert r.correlation_id == "k1"
    assert body(r)["code"] == c.CODE_INVALID_COMMAND
    assert (await call(env, c.SendGroupMessage(uid=67890, content="still here")))["code"] == 0


async def test_a_reply_to_a_vanished_queue_is_logged_and_the_command_settled(env, ns, caplog):
    # The caller stopped waiting (its reply queue is gone): the command runs once, its reply
    # is dropped with a log line, and the delivery is acked, not requeued to be answered again.
    caplog.set_level("INFO", logger="bridge.bus.commands")
    gone = f"{ns}.caller-gone"
    await env["bus"].publish(
        Names(ns).commands,
        f"send.{ACCOUNT}",
        OutMessage(
            body=msgspec.json.encode(c.SendGroupMessage(uid=67890, content="to nobody")),
            message_id="gone-1",
            reply_to=gone,
            correlation_id="g1",
        ),
        mandatory=True,
    )
    d = await until(env["events"], lambda b: b.get("post_type") == "send_message")
    assert body(d)["content"] == "to nobody"
    assert (await call(env, c.SendGroupMessage(uid=67890, content="marker")))["code"] == 0
    d = await until(env["events"], lambda b: b.get("post_type") == "send_message")
    assert body(d)["content"] == "marker", "the command was run again"
    assert env["bridge"].server.duplicates == 0, "the delivery was requeued and answered again"
    assert f"reply queue {gone} is gone" in caplog.text


async def test_same_message_id_runs_once(env):
    cmd = c.SendGroupMessage(uid=67890, content="once")
    first = await call(env, cmd, message_id="dup-1")
    second = await call(env, cmd, message_id="dup-1")
    assert first == second
    await until(env["events"], lambda b: b.get("content") == "once")
    await call(env, c.SendGroupMessage(uid=67890, content="marker"), message_id="dup-2")
    d = await until(env["events"], lambda b: b.get("post_type") == "send_message")
    assert body(d)["content"] == "marker", "the duplicate was sent again"
    assert env["bridge"].server.duplicates == 1


async def test_command_interrupted_by_a_crash_is_answered_failed(bus_factory, ns, tmp_path):
    store = SqliteRecord(tmp_path / "done.sqlite")
    store.mark_started("crashed-1")  # as if the bridge died while QQ was sending it
    # "waiting-1" has no entry: as if it died while that one waited its turn.
    bus, client = await bus_factory(), await bus_factory()
    events = await subscribe(client, ns, "send_message.#")
    async with running_bridge(bus, ns, tmp_path, record=store):
        rpc = RpcClient(client, Names(ns))
        await rpc.start()
        reply = msgspec.json.decode(
            await rpc.call(
                ACCOUNT, c.SendGroupMessage(uid=67890, content="x"), message_id="crashed-1"
            )
        )
        assert events.empty()
        waited = msgspec.json.decode(
            await rpc.call(
                ACCOUNT, c.SendGroupMessage(uid=67890, content="y"), message_id="waiting-1"
            )
        )
        await rpc.close()
    assert (reply["code"], reply["status"]) == (-3, "发送结果未知")
    assert "result unknown" in reply["info"]
    assert waited["code"] == 0
    assert body(await take(events))["content"] == "y"


async def test_order_is_kept_per_conversation(env):
    n = 40
    await asyncio.gather(
        *(env["rpc"].cast(ACCOUNT, c.SendGroupMessage(uid=67890, content=str(i))) for i in range(n))
    )
    contents: list[str] = []
    async with asyncio.timeout(10):
        while len(contents) < n:
            b = body(await env["events"].get())
            if b.get("post_type") == "send_message":
                contents.append(b["content"])
    assert contents == [str(i) for i in range(n)]


async def test_full_buffer_refuses_upstream_events_loudly(tmp_path):
    from bridge.bus.memory import MemoryBus
    from bridge.core import events as ev

    sim = SimulatedAccount(SimSettings(listen=None))
    bridge = Bridge(MemoryBus(), Names("t-buf"), sim, Settings(event_buffer=1, buffer_wait=0.05))
    await bridge.emit(ev.StateChange(params=("init", "loading")))
    with pytest.raises(BufferFull, match="event buffer full"):
        await bridge.emit(ev.StateChange(params=("loading", "scaning")))


async def test_concurrent_duplicates_share_one_execution(env):
    cmd = c.SendGroupMessage(uid=67890, content="concurrent")
    replies = await asyncio.gather(*(call(env, cmd, message_id="dup-c") for _ in range(4)))
    assert replies[0]["code"] == 0
    assert all(r == replies[0] for r in replies)
    await call(env, c.SendGroupMessage(uid=67890, content="after"))
    contents: list[str] = []
    while not contents or contents[-1] != "after":
        b = body(await take(env["events"]))
        if b.get("post_type") == "send_message":
            contents.append(b["content"])
    assert contents == ["concurrent", "after"]


async def test_load_mode_generates_group_messages(env):
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            sim_url(env["sim"], "/sim/load"),
            json={"rate": 200, "seconds": 0.25, "group_uid": 552603},
        ) as r,
    ):
        assert r.status == 200
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while len(got) < 50:
            b = body(await env["events"].get())
            if b.get("post_type") == "receive_message":
                got.append(b)
    assert {b["group_uid"] for b in got} == {552603}
    # Published with many confirms in flight, yet in the order the account received them.
    assert [b["content"] for b in got] == [f"load {i}" for i in range(50)]
    async with (
        aiohttp.ClientSession() as s,
        s.post(sim_url(env["sim"], "/sim/load"), json={"rate": -1}) as r,
    ):
        assert r.status == 400
