"""Latency: POST /sim/inject -> bridge -> RabbitMQ -> a plain aio-pika consumer, at a fixed rate.

The sender runs in its own process and stamps each message with CLOCK_MONOTONIC (shared by
all processes of the machine); the consumer subtracts it on arrival. Baseline, in the same
run: plain aio-pika publishing (confirmed, persistent) from its own process to the same
consumer through the same broker, at the same rate.

Sender usage: python -m bench.latency inject URL RATE SECONDS | publish EXCHANGE RATE SECONDS
"""

from __future__ import annotations

import asyncio
import sys
import time

import aio_pika
import aiohttp
import msgspec

from bench.common import (
    AMQP_URL,
    Result,
    cleanup,
    new_namespace,
    percentile,
    start,
    stop,
    wait_running,
)
from bench.ingest import PAYLOAD


async def _paced(rate: float, seconds: float, send: object) -> None:
    n = int(rate * seconds)
    t0 = time.monotonic()
    tasks = []
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(send(time.monotonic_ns())))  # type: ignore[operator]
    await asyncio.gather(*tasks)


async def sender(mode: str, target: str, rate: float, seconds: float) -> None:
    """The sending side, in its own process."""
    if mode == "inject":
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:

            async def send(stamp: int) -> None:
                payload = {
                    "type": "group_message",
                    "group_uid": 67890,
                    "sender_uid": 456789,
                    "content": f"lat {stamp}",
                }
                async with s.post(target, json=payload) as r:
                    await r.read()

            await _paced(rate, seconds, send)
        return
    conn = await aio_pika.connect(AMQP_URL)
    ch = await conn.channel(publisher_confirms=True)
    ex = await ch.get_exchange(target)

    async def publish(stamp: int) -> None:
        body = PAYLOAD.replace(b'"load 123"', f'"lat {stamp}"'.encode())
        await ex.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            "receive_message.group_message.default",
        )

    await _paced(rate, seconds, publish)
    await conn.close()


async def _measure(exchange: str, args: list[str]) -> list[float]:
    conn = await aio_pika.connect(AMQP_URL)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        await q.bind(exchange, "receive_message.#")
        latencies: list[float] = []

        async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            now = time.monotonic_ns()
            content = str(msgspec.json.decode(msg.body).get("content", ""))
            if content.startswith("lat "):
                latencies.append((now - int(content[4:])) / 1e6)

        await q.consume(on, no_ack=True)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.latency", *args)
        await proc.wait()
        await asyncio.sleep(1.0)
        return latencies
    finally:
        await conn.close()


async def baseline(rate: float, seconds: float) -> list[float]:
    conn = await aio_pika.connect(AMQP_URL)
    try:
        ch = await conn.channel()
        ex = await ch.declare_exchange(
            f"{new_namespace()}.events", aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        return await _measure(ex.name, ["publish", ex.name, str(rate), str(seconds)])
    finally:
        await conn.close()


async def bridge(rate: float, seconds: float) -> list[float]:
    ns = new_namespace()
    proc = start("bridge", ns)
    try:
        await asyncio.to_thread(wait_running, proc)
        args = ["inject", proc.sim("/sim/inject"), str(rate), str(seconds)]
        return await _measure(f"{ns}.events", args)
    finally:
        await asyncio.to_thread(stop, proc)
        await cleanup(ns)


async def run(seconds: float, rate: float = 500) -> list[Result]:
    raw = await baseline(rate, seconds)
    ours = await bridge(rate, seconds)
    expected = int(rate * seconds)
    out = []
    for name, p in (("p50", 50), ("p99", 99), ("max", 100)):
        out.append(
            Result(
                "latency",
                f"inject -> consumer at {rate:.0f}/s, {name}",
                percentile(ours, p),
                "ms",
                percentile(raw, p),
                "aio-pika publish -> consumer, same rate",
                "p99 <= 3 ms" if name == "p99" else "",
                [f"{len(ours)} of {expected} arrived (baseline {len(raw)})"]
                if name == "p50"
                else [],
            )
        )
    return out


if __name__ == "__main__":
    asyncio.run(sender(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
