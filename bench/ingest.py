"""Ingest: the simulated account at full speed -> bridge -> RabbitMQ -> a plain aio-pika consumer.

Limit: plain aio-pika publishing the same payload (persistent, confirmed, many in flight) to
the same broker, drained by the same consumer.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aio_pika
import aiohttp

from bench.common import AMQP_URL, Result, cleanup, new_namespace, start, stop, wait_running

PAYLOAD = (
    '{"class":"recv","content":"load 123","group":"PERL学习交流","group_id":2617047292,'
    '"group_uid":67890,"id":10856,"post_type":"receive_message","receiver":"小灰卡",'
    '"receiver_id":4072574066,"receiver_uid":123456,"sender":"灰灰","sender_id":2372835507,'
    '"sender_uid":456789,"time":1442542632,"type":"group_message"}'
).encode()


class Counter:
    """Counts deliveries and the time between the first and the last."""

    def __init__(self) -> None:
        self.n = 0
        self.first = 0.0
        self.last = 0.0

    def hit(self, _msg: object) -> None:
        now = time.perf_counter()
        if self.n == 0:
            self.first = now
        self.n += 1
        self.last = now

    def rate(self) -> float:
        return (
            (self.n - 1) / (self.last - self.first)
            if self.n > 1 and self.last > self.first
            else 0.0
        )


async def _consumer(conn: aio_pika.abc.AbstractConnection, exchange: str, key: str) -> Counter:
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=2000)
    q = await ch.declare_queue(exclusive=True)
    await q.bind(exchange, key)
    counter = Counter()

    async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        counter.hit(msg)

    await q.consume(on, no_ack=True)
    return counter


async def limit(seconds: float, in_flight: int = 1000) -> float:
    """Raw aio-pika in its own process: confirmed persistent publishes, many in flight."""
    ns = new_namespace()
    conn = await aio_pika.connect(AMQP_URL)
    try:
        ch = await conn.channel()
        ex = await ch.declare_exchange(
            f"{ns}.events", aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        counter = await _consumer(conn, ex.name, "receive_message.#")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.raw_publisher", ex.name, str(seconds), str(in_flight)
        )
        await proc.wait()
        await asyncio.sleep(0.5)
        return counter.rate()
    finally:
        await conn.close()


async def bridge(seconds: float, **settings: str) -> float:
    """The bridge process with the simulated account generating as fast as it can."""
    ns = new_namespace()
    proc = start("bridge", ns, **settings)
    conn = await aio_pika.connect(AMQP_URL)
    try:
        await asyncio.to_thread(wait_running, proc)
        counter = await _consumer(conn, f"{ns}.events", "receive_message.#")
        async with aiohttp.ClientSession() as s:
            r = await s.post(proc.sim("/sim/load"), json={"rate": 1_000_000, "seconds": seconds})
            assert r.status == 200, await r.text()
        await asyncio.sleep(seconds + 1.0)
        return counter.rate()
    finally:
        await conn.close()
        await asyncio.to_thread(stop, proc)
        await cleanup(ns)


async def run(seconds: float) -> list[Result]:
    raw = await limit(seconds)
    ours = await bridge(seconds)
    return [
        Result("ingest", "sim -> bridge -> RabbitMQ -> consumer", ours, "events/s", raw,
               "aio-pika confirmed publishes, 1000 in flight", "ratio >= 0.9"),
    ]  # fmt: skip
