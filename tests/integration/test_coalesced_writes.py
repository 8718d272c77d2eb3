"""The bus's connection coalesces its writes (bridge.bus.coalesce), reconnects included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bridge.bus.amqp import AmqpBus
from bridge.bus.base import OutMessage
from bridge.bus.coalesce import CoalescingTransportFactory, CoalescingWriter
from tests.proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq


def _writer(bus: AmqpBus) -> CoalescingWriter:
    factory = bus._conn.kwargs["transport_factory"]
    assert isinstance(factory, CoalescingTransportFactory)
    assert factory.writer is not None
    return factory.writer


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def _publish(bus: AmqpBus, queue: str, n: int) -> None:
    msgs = [OutMessage(body=b"%d" % i, persistent=False) for i in range(n)]
    async with asyncio.timeout(20):
        routed = await asyncio.gather(*(bus.publish("", queue, m, mandatory=True) for m in msgs))
    assert routed == [True] * n


async def test_concurrent_publishes_share_system_calls_before_and_after_a_reconnect(
    rabbitmq: str, ns: str
) -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    bus = await AmqpBus.connect(
        f"amqp://guest:guest@127.0.0.1:{proxy.port}/?reconnect_interval=0.2",
        name="test-coalesced",
        retry_seconds=5,
    )
    queue = f"{ns}.coalesced"
    try:
        await bus.declare_queue(queue)
        first = _writer(bus)
        writes, sends = first.writes, first.sends
        await _publish(bus, queue, 300)
        writes, sends = first.writes - writes, first.sends - sends
        print(f"FIGURES 300 confirmed publishes: {writes} writes in {sends} system calls")
        assert writes >= 300
        assert sends * 4 < writes, (writes, sends)

        proxy.cut()
        await _until(lambda: not bus.connected, 10)
        proxy.restore()
        await _until(lambda: bus.connected, 20)
        second = _writer(bus)
        assert second is not first, "the reconnect did not go through the coalescing factory"
        writes, sends = second.writes, second.sends
        await _publish(bus, queue, 300)
        assert (second.sends - sends) * 4 < second.writes - writes

        ch = await bus.connection.channel()
        q = await ch.declare_queue(queue, passive=True)
        assert q.declaration_result.message_count == 600
        await ch.queue_delete(queue)
        await ch.close()
    finally:
        await bus.close()
        await proxy.close()
