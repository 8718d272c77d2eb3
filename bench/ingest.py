"""Ingest: the simulated account at full speed -> bridge -> RabbitMQ -> a plain aio-pika consumer.

Limit, in the same run: plain aio-pika publishing the same payload (persistent, confirmed,
many in flight) from its own process to the same broker, drained by the same consumer. Rounds
alternate between the two (see :func:`run`); each round's ratio is reported.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import aio_pika
import aiohttp

from bench.common import (
    AMQP_URL,
    Proc,
    Result,
    cleanup,
    new_namespace,
    start,
    stop,
    wait_running,
)

PAYLOAD = (
    '{"class":"recv","content":"load 123","group":"PERL学习交流","group_id":2617047292,'
    '"group_uid":67890,"id":10856,"post_type":"receive_message","receiver":"小灰卡",'
    '"receiver_id":4072574066,"receiver_uid":123456,"sender":"灰灰","sender_id":2372835507,'
    '"sender_uid":456789,"time":1442542632,"type":"group_message"}'
).encode()


class Counter:
    """Counts deliveries and the time between the first and the last."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start counting afresh (a new round on the same queue)."""
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


async def _settled(counter: Counter, quiet: float = 0.5, timeout: float = 60.0) -> None:
    """Wait (bounded) until no delivery came for ``quiet`` seconds: the round has drained."""
    deadline = time.monotonic() + timeout
    seen = -1
    while counter.n != seen and time.monotonic() < deadline:
        seen = counter.n
        await asyncio.sleep(quiet)


async def _raw_round(exchange: str, counter: Counter, seconds: float, in_flight: int) -> float:
    """One round of the limit: raw aio-pika in its own process, confirmed persistent publishes."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.raw_publisher", exchange, str(seconds), str(in_flight)
    )
    if await proc.wait() != 0:
        raise RuntimeError("bench.raw_publisher failed")
    await _settled(counter)
    return counter.rate()


async def _load_round(proc: Proc, counter: Counter, seconds: float) -> float:
    """One round of ours: the simulated account generates as fast as it can for ``seconds``."""
    async with aiohttp.ClientSession() as s:
        for rate in (1_000_000, 0):  # start, then stop (the generator would go on)
            r = await s.post(proc.sim("/sim/load"), json={"rate": rate, "seconds": seconds})
            assert r.status == 200, await r.text()
            if rate:
                await asyncio.sleep(seconds)
    await _settled(counter)
    return counter.rate()


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
        return await _raw_round(ex.name, counter, seconds, in_flight)
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
        return await _load_round(proc, counter, seconds)
    finally:
        await conn.close()
        await asyncio.to_thread(stop, proc)
        await cleanup(ns)


async def run(seconds: float, rounds: int = 3, in_flight: int = 1000) -> list[Result]:
    """``seconds`` per side in ``rounds`` alternating rounds (ours, limit, limit, ours, ...).

    One bridge and one consumer for the whole part, so that a machine getting busier or
    quieter weighs on both alike; the figures are the medians of the rounds.
    """
    ns = new_namespace()
    proc = start("bridge", ns)
    conn = await aio_pika.connect(AMQP_URL)
    got: dict[str, list[float]] = {"ours": [], "limit": []}
    try:
        ch = await conn.channel()
        raw = f"{ns}.raw"
        await ch.declare_exchange(raw, aio_pika.ExchangeType.TOPIC, auto_delete=True)
        await asyncio.to_thread(wait_running, proc)
        ours = await _consumer(conn, f"{ns}.events", "receive_message.#")
        limit = await _consumer(conn, raw, "receive_message.#")
        per_round = max(1.0, seconds / rounds)
        for i in range(rounds):
            for side in ("ours", "limit") if i % 2 == 0 else ("limit", "ours"):
                # Each round ends drained (_settled), so a round counts only its own events.
                if side == "ours":
                    ours.reset()
                    got[side].append(await _load_round(proc, ours, per_round))
                else:
                    limit.reset()
                    got[side].append(await _raw_round(raw, limit, per_round, in_flight))
    finally:
        await conn.close()
        await asyncio.to_thread(stop, proc)
        await cleanup(ns)
    ratios = ", ".join(f"{o / r:.2f}" for o, r in zip(got["ours"], got["limit"], strict=True))
    rates = ", ".join(f"{o:,.0f}/{r:,.0f}" for o, r in zip(got["ours"], got["limit"], strict=True))
    return [
        Result("ingest", "sim -> bridge -> RabbitMQ -> consumer", statistics.median(got["ours"]),
               "events/s", statistics.median(got["limit"]),
               f"aio-pika confirmed publishes, {in_flight} in flight, own process", "ratio >= 0.95",
               [f"rounds {ratios} (ours/limit {rates} events/s)"]),
    ]  # fmt: skip
