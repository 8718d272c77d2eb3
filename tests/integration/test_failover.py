"""Several broker URLs: the bus tries each, fails over between them, and never logs a password.

Two TCP proxies in front of the one test broker stand in for two cluster nodes; a closed port
for a node that is down. Cutting a proxy (it then refuses new links too) is the loss of that
node: the bus must carry on through the other URL, queues and consumers restored there.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import msgspec
import pytest

from bridge.bus.amqp import AmqpBus
from bridge.bus.rpc import RpcClient
from bridge.core import commands as c
from bridge.core.routing import Names
from bridge.errors import BrokerUnavailable, ConfigError
from tests.conftest import contents_of, running_bridge, sim_url
from tests.procs import free_port
from tests.proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq

DEAD_PASSWORD = "dead-node-pw-1"
BAD_PASSWORD = "wrong-pw-4711"


def all_logged(caplog: pytest.LogCaptureFixture) -> str:
    """The captured records as they would be printed, with tracebacks.

    All but aio_pika.tools, which the CLI silences (its records cannot even be formatted:
    a repr() in them fails).
    """
    fmt = logging.Formatter("%(name)s %(message)s")
    return "\n".join(fmt.format(r) for r in caplog.records if r.name != "aio_pika.tools")


async def inject(s: aiohttp.ClientSession, sim, text: str) -> None:
    r = await s.post(
        sim_url(sim, "/sim/inject"),
        json={"type": "friend_message", "sender_uid": 456789, "content": text},
    )
    assert r.status == 200, await r.text()


async def test_the_bus_fails_over_to_the_next_url_and_logs_no_password(
    rabbitmq, amqp_ns, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    node_a, node_b = TcpProxy("127.0.0.1", 5672), TcpProxy("127.0.0.1", 5672)
    await node_a.start()
    await node_b.start()
    urls = [
        f"amqp://guest:{DEAD_PASSWORD}@127.0.0.1:{free_port()}/?reconnect_interval=0.2",
        f"amqp://guest:guest@127.0.0.1:{node_a.port}/",
        f"amqp://guest:guest@127.0.0.1:{node_b.port}/",
    ]
    bus = await AmqpBus.connect(",".join(urls), name="test-failover", retry_seconds=5)
    try:
        # The first URL is down: the first connect went on to the second.
        assert bus.current_url == f"amqp://guest:***@127.0.0.1:{node_a.port}/"
        async with running_bridge(bus, amqp_ns, tmp_path) as (_bridge, sim):
            consumer = await AmqpBus.connect(rabbitmq, name="test-failover-sink")
            got = await contents_of(consumer, amqp_ns, "receive_message.#")
            rpc = RpcClient(bus, Names(amqp_ns))
            await rpc.start()
            async with aiohttp.ClientSession() as s:
                await inject(s, sim, "before")
                async with asyncio.timeout(10):
                    assert await got.get() == "before"
                # Node A is lost for good: the bus moves to node B on its own.
                node_a.cut()
                async with asyncio.timeout(20):
                    while f":{node_b.port}/" not in bus.current_url or not bus.connected:
                        await asyncio.sleep(0.05)
                await inject(s, sim, "after")
                async with asyncio.timeout(20):
                    while (text := await got.get()) != "after":
                        assert text == "before"  # a re-publish, never anything else
            # Commands flow through node B: the reply queue was restored there.
            reply = await rpc.call("default", c.GetUserInfo(), timeout=20)
            assert msgspec.json.decode(reply)["uid"] == 123456
            await rpc.close()
            await consumer.close()
    finally:
        await bus.close()
        await node_a.close()
        await node_b.close()
    logged = all_logged(caplog)
    assert "RabbitMQ connection restored, to amqp://guest:***@127.0.0.1:" in logged
    assert DEAD_PASSWORD not in logged
    assert ":guest@" not in logged


async def test_errors_of_a_url_list_name_no_password(rabbitmq, caplog):
    caplog.set_level(logging.DEBUG)
    dead = f"amqp://guest:{DEAD_PASSWORD}@127.0.0.1:{free_port()}/"
    with pytest.raises(BrokerUnavailable) as away:
        await AmqpBus.connect(
            f"{dead},amqp://guest:{DEAD_PASSWORD}2@127.0.0.1:{free_port()}/",
            name="test-failover-away",
            retry_seconds=0.5,
        )
    refused_url = rabbitmq.replace(":guest@", f":{BAD_PASSWORD}@")
    with pytest.raises(ConfigError) as refused:
        await AmqpBus.connect(f"{dead},{refused_url}", name="test-failover-refused")
    assert "refused the login of user 'guest'" in str(refused.value)
    texts = [str(away.value), str(refused.value), all_logged(caplog)]
    assert "amqp://guest:***@127.0.0.1:" in texts[0]
    for text in texts:
        assert DEAD_PASSWORD not in text
        assert BAD_PASSWORD not in text
