"""post_api: exact JSON and headers, reply/shutup answers, the loop guard, receivers that are down."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from aiohttp import web

from bridge.adapters.openqq.jsonfmt import legacy
from bridge.adapters.openqq.post_api import USER_AGENT, commands_for
from bridge.bus.base import Delivery
from bridge.core import commands as c
from bridge.core.routing import Names
from tests.adapter.conftest import Api
from tests.conftest import sim_url
from tests.fakes import WebhookRecorder, json_answer, status


@pytest.fixture
def adapter_options(hook: WebhookRecorder) -> dict[str, Any]:
    return {"post_api": hook.url, "post_api_retry_wait": 0.02, "post_api_retry_seconds": 5}  # type: ignore[attr-defined]


async def inject(api: Api, payload: dict[str, Any]) -> dict[str, Any]:
    async with api.session.post(sim_url(api.sim, "/sim/inject"), json=payload) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["event"]


def group_message(content: str) -> dict[str, Any]:
    return {"type": "group_message", "group_uid": 67890, "sender_uid": 456789, "content": content}


async def posted_messages(
    hook: WebhookRecorder, n: int, timeout: float = 10
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            rec = await hook.got.get()
            body = msgspec.json.decode(rec.body)
            if body.get("post_type") != "event":
                out.append(body)
    return out


async def until_event(api: Api, pred) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            b = msgspec.json.decode((await api.events.get()).body)
            if pred(b):
                return b


async def test_posts_the_exact_json_with_the_original_headers(api: Api, hook: WebhookRecorder):
    await inject(api, group_message("hi/there"))
    async with asyncio.timeout(5):
        while True:
            rec = await hook.next()
            if b'"post_type":"receive_message"' in rec.body:
                break
    published = await until_event(api, lambda b: b.get("post_type") == "receive_message")
    assert rec.method == "POST"
    assert rec.path_qs == "/post_api?client=default"
    assert rec.body == legacy(msgspec.json.encode(published, order="sorted"))
    assert b'"content":"hi\\/there"' in rec.body
    assert rec.headers["Content-Type"] == "application/json"
    assert rec.headers["User-Agent"] == USER_AGENT
    assert rec.headers["Accept-Encoding"] == "gzip"
    assert "Accept" not in rec.headers


async def test_default_event_list_is_posted_in_order(api: Api, hook: WebhookRecorder):
    # The login sequence happened before the adapter's queue existed; a relogin happens after.
    await api.get("/openqq/relogin")
    names = []
    async with asyncio.timeout(10):
        while "login" not in names:
            body = msgspec.json.decode((await hook.next()).body)
            names.append(body.get("event"))
    assert names[:2] == ["state_change", "state_change"]
    assert "input_qrcode" in names


async def test_reply_and_shutup_answers_become_commands(api: Api, hook: WebhookRecorder):
    hook.default = lambda r: (
        web.json_response({"reply": "你好", "shutup": 1, "shutup_time": 120})
        if b'"post_type":"receive_message"' in r.body
        else web.Response(text="ok")
    )
    await inject(api, group_message("hello"))
    sent = await until_event(api, lambda b: b.get("post_type") == "send_message")
    assert (sent["content"], sent["from"], sent["group_uid"]) == ("你好", "code", 67890)
    muted = await until_event(api, lambda b: b.get("event") == "group_member_shutup")
    assert (muted["params"][0]["uid"], muted["params"][2]) == (456789, 120)


async def test_a_receiver_replying_to_everything_makes_no_loop(api: Api, hook: WebhookRecorder):
    hook.default = json_answer({"reply": "again"})
    await inject(api, group_message("start"))
    await asyncio.sleep(1.0)
    contents = []
    while not api.events.empty():
        b = msgspec.json.decode((await api.events.get()).body)
        if b.get("post_type") == "send_message":
            contents.append(b["content"])
    assert contents == ["again"], "exactly one automatic reply"
    # An API send's report may be answered once; that answer's report is not answered again.
    await api.get("/openqq/send_group_message", uid="67890", content="api")
    await asyncio.sleep(1.0)
    contents = []
    while not api.events.empty():
        b = msgspec.json.decode((await api.events.get()).body)
        if b.get("post_type") == "send_message":
            contents.append((b["content"], b["from"]))
    assert contents == [("api", "api"), ("again", "code")]


async def test_receiver_down_then_back_loses_nothing_and_keeps_order(
    api: Api, hook: WebhookRecorder
):
    # Every "down" answer: more of them than reject_retries, and none dead-letters.
    hook.script = [status(503), status(502), status(504), status(408), status(429), status(503)]
    for i in range(5):
        await inject(api, group_message(f"m{i}"))
    # Six failed attempts, then each message once: retries repeat the head, never skip it.
    got = [m["content"] for m in await posted_messages(hook, 11)]
    assert got == ["m0"] * 7 + ["m1", "m2", "m3", "m4"]
    assert api.adapter.forwarder is not None
    assert api.adapter.forwarder.dead_lettered == 0


async def dead_letters(api: Api, ns: str) -> asyncio.Queue[Delivery]:
    dead: asyncio.Queue[Delivery] = asyncio.Queue()
    q = await api.bus.declare_queue("", exclusive=True)
    await api.bus.bind(q, Names(ns).dead, "#")

    async def on(d: Delivery) -> None:
        await d.ack()
        await dead.put(d)

    await api.bus.consume(q, on, prefetch=10)
    return dead


@pytest.mark.parametrize("code", [500, 404])
async def test_a_rejected_report_is_retried_quickly_then_dead_lettered_and_the_rest_go_on(
    api: Api, hook: WebhookRecorder, ns, code: int, caplog
):
    dead = await dead_letters(api, ns)
    hook.default = lambda r: (
        web.Response(status=code) if b'"content":"bad"' in r.body else web.Response(text="ok")
    )
    await inject(api, group_message("before"))
    await inject(api, group_message("bad"))
    for i in range(3):
        await inject(api, group_message(f"after{i}"))
    later = await posted_messages(hook, 8)
    # One attempt and three quick retries (post_api_reject_retries), then the queue goes on.
    assert [m["content"] for m in later] == ["before"] + ["bad"] * 4 + [
        "after0",
        "after1",
        "after2",
    ]
    async with asyncio.timeout(5):
        d = await dead.get()
    assert b'"content":"bad"' in d.body
    reason = str(d.headers["x-openqq-reason"])
    assert f"rejected it: HTTP {code} (4 attempt(s))" in reason
    assert "client=default" not in reason, "query strings may hold secrets"
    assert dead.empty()
    line = next(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert "receive_message.group_message" in line, line
    assert f"report {d.message_id}" in line, "the line names the report by its message_id"
    assert f"HTTP {code}" in line
    assert "client=default" not in line
    assert "the next report goes out" in line


async def test_a_rejected_report_is_not_retried_with_zero_reject_retries(
    ns, tmp_path, hook: WebhookRecorder
):
    from bridge.bus.memory import MemoryBus
    from tests.conftest import running_adapter, running_bridge

    shared = MemoryBus()
    hook.default = lambda r: (
        web.Response(status=500) if b'"content":"bad"' in r.body else web.Response(text="ok")
    )
    async with (
        running_bridge(MemoryBus(shared.broker), ns, tmp_path) as (_bridge, sim),
        running_adapter(
            MemoryBus(shared.broker),
            ns,
            post_api=hook.url,  # type: ignore[attr-defined]
            post_event=False,
            post_api_retry_wait=0.02,
            post_api_reject_retries=0,
        ),
    ):
        import aiohttp

        async with aiohttp.ClientSession() as s:
            for text in ("bad", "good"):
                await s.post(sim_url(sim, "/sim/inject"), json=group_message(text))
        got = await posted_messages(hook, 2)
    assert [m["content"] for m in got] == ["bad", "good"]


async def test_retries_are_bounded(ns, tmp_path, hook: WebhookRecorder):
    from bridge.bus.memory import MemoryBus
    from tests.conftest import running_adapter, running_bridge

    shared = MemoryBus()
    hook.default = status(503)
    async with (
        running_bridge(MemoryBus(shared.broker), ns, tmp_path) as (_bridge, sim),
        running_adapter(
            MemoryBus(shared.broker),
            ns,
            post_api=hook.url,  # type: ignore[attr-defined]
            post_api_retry_wait=0.02,
            post_api_retry_seconds=0.3,
        ) as adapter,
    ):
        import aiohttp

        async with aiohttp.ClientSession() as s:
            await s.post(sim_url(sim, "/sim/inject"), json=group_message("x"))
        async with asyncio.timeout(5):
            while adapter.forwarder is None or adapter.forwarder.dead_lettered < 1:
                await asyncio.sleep(0.05)
    assert hook.got.qsize() >= 3, "it was retried before giving up"


@pytest.mark.parametrize(
    ("report", "answer", "expected"),
    [
        (
            {"post_type": "receive_message", "type": "friend_message", "sender_id": 1},
            {"reply": "r"},
            [(c.SendFriendMessage(id=1, content="r", from_="code"), "reply")],
        ),
        (
            {"post_type": "receive_message", "type": "friend_message", "sender_id": 1},
            {"reply": ""},
            [],
        ),
        (
            {"post_type": "receive_message", "type": "friend_message", "sender_id": 1},
            {"reply": None},
            [],
        ),
        (
            {"post_type": "receive_message", "type": "friend_message", "sender_id": 1},
            {"reply": 42},
            [(c.SendFriendMessage(id=1, content="42", from_="code"), "reply")],
        ),
        (
            {"post_type": "receive_message", "type": "discuss_message", "discuss_id": 9},
            {"reply": "r"},
            [(c.SendDiscussMessage(id=9, content="r", from_="code"), "reply")],
        ),
        (
            {"post_type": "receive_message", "type": "friend_message", "sender_id": 1},
            {"shutup": 1},
            [],
        ),
        (
            {
                "post_type": "receive_message",
                "type": "group_message",
                "group_id": 5,
                "sender_id": 1,
            },
            {"shutup": "1"},
            [(c.ShutupGroupMember(group_id=5, member_id=[1], time=60), "shutup")],
        ),
        (
            {
                "post_type": "receive_message",
                "type": "group_message",
                "group_id": 5,
                "sender_id": 1,
            },
            {"shutup": 2},
            [],
        ),
        (
            {
                "post_type": "send_message",
                "type": "friend_message",
                "receiver_id": 3,
                "from": "api",
            },
            {"reply": "r"},
            [(c.SendFriendMessage(id=3, content="r", from_="code"), "reply")],
        ),
        (
            {
                "post_type": "send_message",
                "type": "friend_message",
                "receiver_id": 3,
                "from": "api",
            },
            {"reply": "r", "format": "html"},
            [],
        ),
        (
            {"post_type": "send_message", "type": "group_message", "group_id": 5, "from": "code"},
            {"reply": "r"},
            [],
        ),
        ({"post_type": "event", "event": "login"}, {"reply": "r"}, []),
    ],
)
def test_answer_rules(report, answer, expected):
    assert commands_for(report, answer) == expected


async def test_receiver_not_listening_at_all_then_started(ns, tmp_path):
    import aiohttp

    from bridge.bus.memory import MemoryBus
    from tests.conftest import running_adapter, running_bridge
    from tests.procs import free_port

    port = free_port()
    rec = WebhookRecorder()
    shared = MemoryBus()
    async with (
        running_bridge(MemoryBus(shared.broker), ns, tmp_path) as (_bridge, sim),
        running_adapter(
            MemoryBus(shared.broker),
            ns,
            post_api=f"http://127.0.0.1:{port}/hook",
            post_event=False,
            post_api_retry_wait=0.05,
            post_api_retry_seconds=30,
        ),
        aiohttp.ClientSession() as s,
    ):
        for i in range(3):
            await s.post(sim_url(sim, "/sim/inject"), json=group_message(f"d{i}"))
        await asyncio.sleep(0.5)
        runner = web.AppRunner(rec.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            got = await posted_messages(rec, 3)
        finally:
            await runner.cleanup()
    assert [m["content"] for m in got] == ["d0", "d1", "d2"]
