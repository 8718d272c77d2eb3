"""Latency: POST /sim/inject -> bridge -> RabbitMQ -> a plain aio-pika consumer, at a fixed rate.

Baseline: plain aio-pika publishing (confirmed, persistent) to a consumer through the same
broker at the same rate, in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

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


async def _measure(
    send: Callable[[int], Awaitable[None]],
    conn: aio_pika.abc.AbstractConnection,
    exchange: str,
    rate: float,
    seconds: float,
) -> list[float]:
    ch = await conn.channel()
    q = await ch.declare_queue(exclusive=True)
    await q.bind(exchange, "receive_message.#")
    sent: dict[int, float] = {}
    got: dict[int, float] = {}

    async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.perf_counter()
        body = msgspec.json.decode(msg.body)
        with contextlib.suppress(KeyError, ValueError):
            got[int(str(body["content"]).split()[-1])] = now

    await q.consume(on, no_ack=True)
    n = int(rate * seconds)
    t0 = time.perf_counter()
    tasks = []
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[i] = time.perf_counter()
        tasks.append(asyncio.ensure_future(send(i)))
    await asyncio.gather(*tasks)
    await asyncio.sleep(1.0)
    return [(got[i] - sent[i]) * 1000 for i in sent if i in got]


async def baseline(rate: float, seconds: float) -> list[float]:
    conn = await aio_pika.connect(AMQP_URL)
    try:
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.declare_exchange(
            f"{new_namespace()}.events", aio_pika.ExchangeType.TOPIC, auto_delete=True
        )

        async def send(i: int) -> None:
            body = PAYLOAD.replace(b'"load 123"', f'"lat {i}"'.encode())
            await ex.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                             "receive_message.group_message.default")  # fmt: skip

        return await _measure(send, conn, ex.name, rate, seconds)
    finally:
        await conn.close()


async def bridge(rate: float, seconds: float) -> list[float]:
    ns = new_namespace()
    proc = start("bridge", ns)
    conn = await aio_pika.connect(AMQP_URL)
    try:
        await asyncio.to_thread(wait_running, proc)
        url = proc.sim("/sim/inject")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:

            async def send(i: int) -> None:
                payload = {
                    "type": "group_message",
                    "group_uid": 67890,
                    "sender_uid": 456789,
                    "content": f"lat {i}",
                }
                async with s.post(url, json=payload) as r:
                    await r.read()

            return await _measure(send, conn, f"{ns}.events", rate, seconds)
    finally:
        await conn.close()
        await asyncio.to_thread(stop, proc)
        await cleanup(ns)


async def run(seconds: float, rate: float = 500) -> list[Result]:
    raw = await baseline(rate, seconds)
    ours = await bridge(rate, seconds)
    out = []
    for name, p in (("p50", 50), ("p99", 99), ("max", 100)):
        out.append(Result("latency", f"inject -> consumer at {rate:.0f}/s, {name}", percentile(ours, p), "ms",
                          percentile(raw, p), "aio-pika publish -> consumer, same rate",
                          "p99 <= 3 ms" if name == "p99" else "",
                          [f"{len(ours)} of {int(rate * seconds)} arrived"] if name == "p50" else []))  # fmt: skip
    return out
