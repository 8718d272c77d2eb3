"""Faults between the bridge and RabbitMQ: a cut connection, a full buffer, a slow consumer.

Each test counts what went in and what came out by message id, and prints the figures that
RELIABILITY.md reports (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import collections
import time

import aio_pika
import aiohttp
import msgspec
import pytest

from bridge.bus.amqp import AmqpBus
from tests.conftest import running_bridge, sim_url

pytestmark = pytest.mark.rabbitmq


class Sink:
    """A plain aio-pika consumer recording (content, message_id) of every delivery."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.stamps: list[float] = []

    async def on(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.seen.append((msgspec.json.decode(msg.body)["content"], msg.message_id))
        self.stamps.append(time.monotonic())


async def sink_on(conn: aio_pika.abc.AbstractConnection, ns: str) -> Sink:
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=1000)
    await ch.declare_exchange(f"{ns}.events", aio_pika.ExchangeType.TOPIC, durable=True)
    q = await ch.declare_queue(exclusive=True)
    await q.bind(f"{ns}.events", "receive_message.#")
    sink = Sink()
    await q.consume(sink.on, no_ack=True)
    return sink


async def load(sim, rate: float, seconds: float) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(sim_url(sim, "/sim/load"), json={"rate": rate, "seconds": seconds}) as r,
    ):
        assert r.status == 200


async def wait_count(sink: Sink, n: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while len({c for c, _ in sink.seen}) < n:
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_broker_cut_while_5000_messages_loses_nothing(
    rabbitmq, amqp_ns, tmp_path, proxied_bus
):
    proxy, bus = proxied_bus
    conn = await aio_pika.connect(rabbitmq)
    try:
        sink = await sink_on(conn, amqp_ns)
        async with running_bridge(bus, amqp_ns, tmp_path) as (_bridge, sim):
            await load(sim, rate=2000, seconds=2.5)
            await asyncio.sleep(0.5)
            proxy.cut()
            cut_at = time.monotonic()
            await asyncio.sleep(3.0)
            proxy.restore()
            restored_at = time.monotonic()
            await wait_count(sink, 5000, timeout=60)
            assert sim.load_refused == 0
        contents = collections.Counter(c for c, _ in sink.seen)
        ids: dict[str, set[str | None]] = collections.defaultdict(set)
        for c, mid in sink.seen:
            ids[c].add(mid)
        assert set(contents) == {f"load {i}" for i in range(5000)}
        # A duplicate is a re-publish after a lost confirm: always with the same message_id.
        assert all(len(m) == 1 for m in ids.values())
        after = [t for t in sink.stamps if t > restored_at]
        recovery = (after[0] - restored_at) if after else float("nan")
        duplicates = sum(contents.values()) - len(contents)
        print(
            f"\nFIGURES broker-cut: in 5000, out {len(contents)} distinct, duplicates {duplicates},"
            f" cut {restored_at - cut_at:.1f}s, first delivery {recovery:.2f}s after restore"
        )
    finally:
        await conn.close()


@pytest.mark.slow
async def test_a_full_buffer_refuses_upstream_loudly_and_drops_nothing_silently(
    rabbitmq, amqp_ns, tmp_path, caplog, proxied_bus
):
    proxy, bus = proxied_bus
    conn = await aio_pika.connect(rabbitmq)
    try:
        sink = await sink_on(conn, amqp_ns)
        async with running_bridge(bus, amqp_ns, tmp_path, event_buffer=200, buffer_wait=0.2) as (
            _bridge,
            sim,
        ):
            proxy.cut()
            await load(sim, rate=1000, seconds=2.0)
            await asyncio.sleep(2.5)
            proxy.restore()
            async with asyncio.timeout(30):
                while len(sink.seen) < sim.load_sent:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
        received = {c for c, _ in sink.seen}
        refused, sent = sim.load_refused, sim.load_sent
        assert refused > 0, "the buffer should have filled"
        assert len(received) == sent, "everything the bridge accepted arrived"
        # Every generated message is either delivered or was refused (and counted, and logged).
        generated = {f"load {i}" for i in range(sent + refused)}
        assert received <= generated
        assert "event buffer full (200 events)" in caplog.text
        assert "refused so far" in caplog.text
        print(
            f"\nFIGURES full-buffer: offered {sent + refused}, accepted {sent}, refused upstream {refused}"
            f" (logged), delivered {len(received)}, lost silently 0"
        )
    finally:
        await conn.close()


async def test_a_slow_consumer_does_not_slow_the_bridge_or_others(rabbitmq, amqp_ns, tmp_path):
    conn = await aio_pika.connect(rabbitmq)
    bus = await AmqpBus.connect(rabbitmq, name="fault-slow", retry_seconds=5)
    try:
        sink = await sink_on(conn, amqp_ns)
        ch = await conn.channel()
        # The recommended limits for a downstream queue (README): bounded length, oldest first out.
        slow = await ch.declare_queue(
            f"{amqp_ns}.slow",
            exclusive=True,
            arguments={"x-max-length": 100, "x-overflow": "drop-head"},
        )
        await slow.bind(f"{amqp_ns}.events", "receive_message.#")
        async with running_bridge(bus, amqp_ns, tmp_path) as (bridge, sim):
            t0 = time.monotonic()
            await load(sim, rate=2000, seconds=1.0)
            await wait_count(sink, 2000, timeout=30)
            elapsed = time.monotonic() - t0
            depth = (
                await ch.declare_queue(f"{amqp_ns}.slow", passive=True)
            ).declaration_result.message_count
            assert not bridge.outbox.full_logged, "the bridge's buffer never filled"
        assert depth is not None
        assert depth <= 100
        print(
            f"\nFIGURES slow-consumer: 2000 events to the fast consumer in {elapsed:.2f}s,"
            f" slow queue held {depth} (x-max-length 100)"
        )
    finally:
        await bus.close()
        await conn.close()


async def test_a_publish_the_broker_never_confirms_fails_after_the_confirm_timeout(proxied_bus):
    """A stalled link (or a broker blocking publishers) must not hold a publisher for ever."""
    from bridge.bus.base import OutMessage
    from bridge.errors import PublishFailed

    proxy, bus = proxied_bus
    bus.confirm_timeout = 0.5
    msg = OutMessage(b"{}", message_id="confirm-timeout")
    assert await bus.publish("", "nowhere", msg, mandatory=False)
    proxy.hold()  # the link stays open, but no confirm comes back
    try:
        async with asyncio.timeout(10):  # bounded by the bus, not by this guard
            with pytest.raises(PublishFailed, match=r"not confirmed within 0\.5s"):
                await bus.publish("", "nowhere", msg, mandatory=False)
    finally:
        proxy.release()
    assert await bus.publish("", "nowhere", msg, mandatory=False)
