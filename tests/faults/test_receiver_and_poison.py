"""A post_api receiver that is down for a while; poison commands; fuzzed command bodies."""

from __future__ import annotations

import asyncio
import collections
import os
import time
import uuid

import aio_pika
import aiohttp
import msgspec
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.bus.amqp import AmqpBus
from bridge.bus.commands import CommandServer
from bridge.bus.memory import MemoryBus
from bridge.bus.topology import declare_account
from bridge.core.commands import CODE_INVALID_COMMAND
from bridge.core.routing import Names
from bridge.store import SqliteRecord
from tests.conftest import running_adapter, running_bridge, sim_url
from tests.fakes import FakeDelivery, WebhookRecorder
from tests.procs import free_port

pytestmark = pytest.mark.rabbitmq


@pytest.mark.slow
async def test_post_api_receiver_down_then_back_gets_everything_in_order(
    rabbitmq, amqp_ns, tmp_path
):
    port = free_port()
    rec = WebhookRecorder()
    bridge_bus = await AmqpBus.connect(rabbitmq, name="fault-hook-bridge", retry_seconds=5)
    adapter_bus = await AmqpBus.connect(rabbitmq, name="fault-hook-adapter", retry_seconds=5)
    # RELIABILITY.md's one-minute figure: OPENQQ_FAULT_DOWN_SECONDS=60 pytest -o timeout=300 ...
    n, down = 200, float(os.environ.get("OPENQQ_FAULT_DOWN_SECONDS", "8"))
    try:
        async with (
            running_bridge(bridge_bus, amqp_ns, tmp_path) as (_bridge, sim),
            running_adapter(
                adapter_bus,
                amqp_ns,
                post_api=f"http://127.0.0.1:{port}/hook",
                post_event=False,
                post_api_retry_wait=0.2,
                post_api_retry_seconds=600,
            ),
            aiohttp.ClientSession() as s,
        ):
            t0 = time.monotonic()
            for i in range(n):
                async with s.post(
                    sim_url(sim, "/sim/inject"),
                    json={
                        "type": "group_message",
                        "group_uid": 67890,
                        "sender_uid": 456789,
                        "content": f"h{i}",
                    },
                ) as r:
                    assert r.status == 200
            await asyncio.sleep(max(0.0, down - (time.monotonic() - t0)))
            runner = web.AppRunner(rec.app())
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            back = time.monotonic()
            try:
                got: list[str] = []
                async with asyncio.timeout(60):
                    while len(got) < n:
                        body = msgspec.json.decode((await rec.got.get()).body)
                        if body.get("post_type") == "receive_message":
                            got.append(body["content"])
                drained = time.monotonic() - back
            finally:
                await runner.cleanup()
        assert got == [f"h{i}" for i in range(n)]
        print(
            f"\nFIGURES post_api-down: {n} events while the receiver was down {down:.0f}s,"
            f" {len(got)} delivered in order, none lost, drained {drained:.1f}s after it came back"
        )
    finally:
        await bridge_bus.close()
        await adapter_bus.close()


async def test_poison_commands_are_dead_lettered_once_and_the_queue_flows(
    rabbitmq, amqp_ns, tmp_path
):
    bus = await AmqpBus.connect(rabbitmq, name="fault-poison", retry_seconds=5)
    conn = await aio_pika.connect(rabbitmq)
    try:
        async with running_bridge(bus, amqp_ns, tmp_path) as (bridge, _sim):
            ch = await conn.channel()
            replies = await ch.declare_queue(exclusive=True)
            got: dict[str, list[dict]] = collections.defaultdict(list)

            async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                got[msg.correlation_id or ""].append(msgspec.json.decode(msg.body))

            await replies.consume(on, no_ack=True)
            commands = await ch.get_exchange(f"{amqp_ns}.commands")
            bodies = {
                "not-json": b"{oops",
                "impossible-target": b'{"command":"send_group_message","uid":-1,"content":"x"}',
                "unknown-command": b'{"command":"format_disk"}',
                "fine": b'{"command":"send_group_message","uid":67890,"content":"after poison"}',
            }
            for name, body in bodies.items():
                await commands.publish(
                    aio_pika.Message(
                        body,
                        correlation_id=name,
                        reply_to=replies.name,
                        message_id=f"{name}-{uuid.uuid4().hex}",
                    ),
                    routing_key="send.default",
                )
            async with asyncio.timeout(10):
                while len(got) < len(bodies):
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            dead = await ch.declare_queue(f"{amqp_ns}.default.dead", passive=True)
            letters = []
            while (msg := await dead.get(fail=False, no_ack=True)) is not None:
                letters.append(msg)
            assert sorted(str(m.correlation_id) for m in letters) == [
                "impossible-target",
                "not-json",
                "unknown-command",
            ]
            assert all("invalid command" in str(m.headers["x-openqq-reason"]) for m in letters)
            for name in ("not-json", "impossible-target", "unknown-command"):
                assert [r["code"] for r in got[name]] == [CODE_INVALID_COMMAND]
            assert got["fine"][0]["code"] == 0
            assert bridge.server.dead_lettered == 3
    finally:
        await bus.close()
        await conn.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
commandish = st.fixed_dictionaries(
    {
        "command": st.sampled_from(
            [
                "send_group_message",
                "kick_group_member",
                "shutup_group_member",
                "search_friend",
                "get_user_info",
                "nope",
                "",
            ]
        )
    },
    optional={
        "uid": json_values,
        "id": json_values,
        "content": json_values,
        "member_uid": json_values,
        "time": json_values,
        "group_uid": json_values,
        "markname": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        commandish.map(msgspec.json.encode),
        json_values.map(msgspec.json.encode),
    )
)
def test_any_command_body_is_answered_and_settled_exactly_once(body: bytes):
    async def go() -> None:
        bus = MemoryBus()
        names = Names("t-fuzz")
        await declare_account(bus, names, "default")
        replies = await bus.declare_queue("replies", exclusive=True)
        answers: list[bytes] = []

        async def on(d):
            answers.append(d.body)

        await bus.consume(replies, on, prefetch=0, auto_ack=True)

        async def execute(_cmd, _handover):
            return {"code": 0, "status": "ok"}

        server = CommandServer(bus, names, "default", execute, SqliteRecord(None))
        d = FakeDelivery(body)
        await server._handle(d)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert d.settled == ["ack"], d.settled
        assert len(answers) == 1
        answer = msgspec.json.decode(answers[0])
        assert answer["code"] in (0, CODE_INVALID_COMMAND)
        if answer["code"] == CODE_INVALID_COMMAND:
            assert answer["status"].startswith("invalid command: ")
            assert server.dead_lettered == 1

    asyncio.run(go())
