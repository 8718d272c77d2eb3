"""The robust connection: a broker link cut while the account keeps receiving loses nothing."""

from __future__ import annotations

import asyncio

import aio_pika
import aiohttp
import msgspec
import pytest

from bridge.core import commands as c
from tests.conftest import running_bridge, sim_url

pytestmark = pytest.mark.rabbitmq


async def test_events_during_a_broker_outage_arrive_after_reconnect(
    rabbitmq, amqp_ns, tmp_path, proxied_bus
):
    proxy, bus = proxied_bus
    consumer = await aio_pika.connect(rabbitmq)
    try:
        async with running_bridge(bus, amqp_ns, tmp_path) as (_bridge, sim):
            ch = await consumer.channel()
            q = await ch.declare_queue(exclusive=True)
            await q.bind(f"{amqp_ns}.events", "receive_message.#")
            n = 60
            async with aiohttp.ClientSession() as s:
                for i in range(n):
                    if i == 20:
                        proxy.cut()
                    if i == 40:
                        proxy.restore()
                    r = await s.post(
                        sim_url(sim, "/sim/inject"),
                        json={"type": "friend_message", "sender_uid": 456789, "content": str(i)},
                    )
                    assert r.status == 200, await r.text()
                    await asyncio.sleep(0.01)
            got: list[str] = []
            async with asyncio.timeout(30), q.iterator() as it:
                async for msg in it:
                    await msg.ack()
                    got.append(msgspec.json.decode(msg.body)["content"])
                    if len(set(got)) == n:
                        break
            # Re-published events keep their message_id; here each content arrives at least once.
            assert sorted(set(got), key=int) == [str(i) for i in range(n)]
            # Commands flow again after the reconnect.
            from bridge.bus.rpc import RpcClient
            from bridge.core.routing import Names

            rpc = RpcClient(bus, Names(amqp_ns))
            await rpc.start()
            reply = msgspec.json.decode(await rpc.call("default", c.GetUserInfo(), timeout=10))
            assert reply["uid"] == 123456
            await rpc.close()
    finally:
        await consumer.close()
