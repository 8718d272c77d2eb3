"""OneBot upstream end to end on real RabbitMQ, seen by plain aio-pika clients."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import msgspec
import pytest

from bridge.bus.amqp import AmqpBus
from bridge.config import Settings
from bridge.core.routing import Names
from bridge.service import Bridge
from bridge.upstream.onebot.account import OneBotAccount
from tests.fake_onebot import FakeOneBot
from tests.onebot.conftest import onebot_settings

pytestmark = pytest.mark.rabbitmq


async def test_group_message_in_and_send_command_out(rabbitmq, amqp_ns, aiohttp_server):
    fake = FakeOneBot()
    server = await aiohttp_server(fake.app())
    url = str(server.make_url("/")).replace("http", "ws", 1)
    bus = await AmqpBus.connect(rabbitmq, name="onebot-e2e", retry_seconds=5)
    bridge = Bridge(
        bus,
        Names(amqp_ns),
        OneBotAccount(onebot_settings(url)),
        Settings(send_interval=0, send_interval_per_target=0),
    )
    task = asyncio.create_task(bridge.run())
    conn = await aio_pika.connect(rabbitmq)
    try:
        await asyncio.wait_for(bridge.started.wait(), 10)
        ch = await conn.channel()
        inbox = await ch.declare_queue(exclusive=True)
        await inbox.bind(f"{amqp_ns}.events", "receive_message.group_message.*")
        await fake.push(
            {
                "post_type": "message",
                "message_type": "group",
                "sub_type": "normal",
                "message_id": 5,
                "group_id": 67890,
                "user_id": 456789,
                "message": [{"type": "text", "data": {"text": "来自QQ"}}],
                "sender": {"user_id": 456789, "nickname": "灰灰"},
            }
        )
        body: dict = {}
        async with asyncio.timeout(10), inbox.iterator() as it:
            async for msg in it:
                await msg.ack()
                body = msgspec.json.decode(msg.body)
                break
        assert (body["content"], body["group_uid"], body["sender_uid"]) == ("来自QQ", 67890, 456789)
        assert msg.routing_key == "receive_message.group_message.default"

        replies = await ch.declare_queue(exclusive=True)
        commands = await ch.get_exchange(f"{amqp_ns}.commands")
        corr = uuid.uuid4().hex
        await commands.publish(
            aio_pika.Message(
                b'{"command":"send_group_message","uid":67890,"content":"hi"}',
                reply_to=replies.name,
                correlation_id=corr,
                message_id=corr,
            ),
            routing_key="send.default",
        )
        action = await fake.next_action("send_group_msg", timeout=10)
        assert action["params"] == {
            "group_id": 67890,
            "message": [{"type": "text", "data": {"text": "hi"}}],
        }
        async with asyncio.timeout(10), replies.iterator() as it:
            async for reply in it:
                await reply.ack()
                break
        assert reply.correlation_id == corr
        assert (
            reply.body == f'{{"code":0,"id":{1000},"info":"发送正常","status":"发送成功"}}'.encode()
        )
    finally:
        await conn.close()
        bridge.request_stop()
        await asyncio.wait_for(task, 15)
        await bus.close()


async def test_onebot_disconnect_and_reconnect_on_rabbitmq(rabbitmq, amqp_ns, aiohttp_server):
    fake = FakeOneBot()
    server = await aiohttp_server(fake.app())
    url = str(server.make_url("/")).replace("http", "ws", 1)
    bus = await AmqpBus.connect(rabbitmq, name="onebot-drop", retry_seconds=5)
    bridge = Bridge(bus, Names(amqp_ns), OneBotAccount(onebot_settings(url)), Settings())
    task = asyncio.create_task(bridge.run())
    conn = await aio_pika.connect(rabbitmq)
    try:
        await asyncio.wait_for(bridge.started.wait(), 10)
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        await q.bind(f"{amqp_ns}.events", "#")
        await fake.drop()
        seen: list[tuple[str, object]] = []
        async with asyncio.timeout(10), q.iterator() as it:
            async for msg in it:
                await msg.ack()
                b = msgspec.json.decode(msg.body)
                seen.append(
                    (b.get("event") or b.get("post_type"), b.get("params") or b.get("content"))
                )
                if b.get("event") == "login":
                    await fake.push(
                        {
                            "post_type": "message",
                            "message_type": "private",
                            "sub_type": "friend",
                            "message_id": 9,
                            "user_id": 456789,
                            "message": "back",
                            "sender": {"nickname": "灰灰"},
                        }
                    )
                if b.get("post_type") == "receive_message":
                    break
        assert seen[:3] == [
            ("state_change", ["running", "loading"]),
            ("state_change", ["loading", "updating"]),
            ("state_change", ["updating", "running"]),
        ]
        assert ("receive_message", "back") in seen
    finally:
        await conn.close()
        bridge.request_stop()
        await asyncio.wait_for(task, 15)
        await bus.close()
