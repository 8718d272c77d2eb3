"""Commands across connection losses: run to completion, acked only after the reply went out."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest

from bridge.bus.amqp import AmqpBus
from bridge.bus.base import OutMessage
from bridge.bus.commands import CommandServer
from bridge.bus.memory import MemoryBus
from bridge.bus.rpc import RpcClient
from bridge.bus.topology import declare_account
from bridge.core import commands as c
from bridge.core.routing import Names
from bridge.errors import PublishFailed
from bridge.store import SqliteRecord
from tests.conftest import ACCOUNT, running_bridge
from tests.fakes import FakeDelivery


class _RepliesFailOnce(MemoryBus):
    """The channel right after a reconnect: the first reply publish is not confirmed."""

    failures = 1

    async def publish(
        self, exchange: str, routing_key: str, message: OutMessage, *, mandatory: bool
    ) -> bool:
        if exchange == "" and self.failures > 0:
            self.failures -= 1
            raise PublishFailed("channel not back yet")
        return await super().publish(exchange, routing_key, message, mandatory=mandatory)


async def test_a_reply_that_cannot_be_published_is_not_acked_and_the_redelivery_gets_it():
    bus = _RepliesFailOnce()
    names = Names(f"t-{uuid.uuid4().hex[:8]}")
    await declare_account(bus, names, ACCOUNT)
    replies = await bus.declare_queue("replies", exclusive=True)
    answers: list[bytes] = []

    async def on(d):
        answers.append(d.body)

    await bus.consume(replies, on, prefetch=0, auto_ack=True)
    runs = 0

    async def execute(_cmd, handover):
        nonlocal runs
        await handover()
        runs += 1
        return c.SendReply(code=0, id=42, status="发送成功")

    server = CommandServer(bus, names, ACCOUNT, execute, SqliteRecord(None))
    cmd = msgspec.json.encode({"command": "send_group_message", "uid": 1, "content": "x"})
    first = FakeDelivery(cmd, "m-5")
    await server._on_delivery(first)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    print(f"FIGURES first delivery settled {first.settled}, replies {len(answers)}, runs {runs}")
    assert first.settled == ["reject requeue=True"], "acked although its reply was lost"
    assert answers == []
    again = FakeDelivery(cmd, "m-5", redelivered=True)
    await server._on_delivery(again)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert again.settled == ["ack"]
    assert runs == 1, "the redelivery ran the command again"
    assert [msgspec.json.decode(a)["code"] for a in answers] == [0]


@pytest.mark.rabbitmq
async def test_a_send_handed_to_qq_survives_a_connection_loss_and_gets_its_real_reply(
    rabbitmq, amqp_ns, tmp_path, proxied_bus
):
    proxy, bus = proxied_bus
    async with running_bridge(bus, amqp_ns, tmp_path) as (_bridge, sim):
        sent: list[str] = []
        in_qq = asyncio.Event()
        original = sim.send_group

        async def slow_send(group, content, segments=None):
            out = await original(group, content, segments)
            sent.append(content)
            in_qq.set()
            # QQ takes its time to answer: the connection drops meanwhile.
            await asyncio.sleep(1.5)
            return out

        sim.send_group = slow_send  # type: ignore[method-assign]
        # The caller is on its own, direct connection.
        client = await AmqpBus.connect(rabbitmq, name="caller", retry_seconds=5)
        try:
            rpc = RpcClient(client, Names(amqp_ns))
            await rpc.start()
            call = asyncio.create_task(
                rpc.call(
                    ACCOUNT,
                    c.SendGroupMessage(uid=67890, content="once"),
                    message_id="d4-1",
                    timeout=30,
                )
            )
            async with asyncio.timeout(10):
                await in_qq.wait()
            proxy.cut()
            await asyncio.sleep(0.5)
            proxy.restore()
            reply = msgspec.json.decode(await call)
            await rpc.close()
        finally:
            await client.close()
    print(f"FIGURES sends to QQ {len(sent)}, reply code {reply['code']} {reply['status']}")
    assert sent == ["once"]
    assert (reply["code"], reply["status"]) == (0, "发送成功"), reply
