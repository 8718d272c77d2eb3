"""Latency: POST /sim/inject -> bridge -> RabbitMQ -> a plain aio-pika consumer, at a fixed rate.

Limit, in the same run: the minimal relay of the same hop (bench/relay.py, its own process): an
aiohttp server taking the same POST and publishing it confirmed and persistent with aio-pika to
the same broker, drained by the same consumer. Both run for the whole part and are measured
together, message by message: in each period of the rate the sender posts once to each, half
a period apart (who goes first alternates round by round), so that whatever else the machine
is doing weighs on both alike. Each round's ratio is reported beside the pooled figures.

The sender runs in its own process (one per round, a fresh connection pool, warmed up for
``WARMUP`` seconds before it stamps) and stamps each message with CLOCK_MONOTONIC (shared by
all processes of the machine); the consumer subtracts it on arrival.

Sender usage: python -m bench.latency RATE SECONDS WARMUP URL...
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable

import aio_pika
import aiohttp
import msgspec

from bench.common import (
    AMQP_URL,
    Result,
    cleanup,
    free_port,
    new_namespace,
    percentile,
    start,
    stop,
    wait_http,
    wait_running,
)

#: Seconds each round's sender sends unstamped messages first (connections, caches, JIT-free
#: but cold paths), so a round measures the steady state of both sides alike.
WARMUP = 0.5


async def _paced(
    rate: float, seconds: float, sends: list[Callable[[int], Awaitable[None]]]
) -> None:
    """Each ``rate`` times a second, each of ``sends`` once, spread evenly over the period."""
    n = int(rate * seconds)
    t0 = time.monotonic()
    tasks = []
    for i in range(n):
        for j, send in enumerate(sends):
            delay = t0 + (i + j / len(sends)) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(send(time.monotonic_ns())))
    await asyncio.gather(*tasks)


async def sender(urls: list[str], rate: float, seconds: float, warmup: float) -> None:
    """The sending side, in its own process: ``warmup`` seconds unstamped, then stamped."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:

        def sending(url: str, prefix: str) -> Callable[[int], Awaitable[None]]:
            async def send(stamp: int) -> None:
                payload = {
                    "type": "group_message",
                    "group_uid": 67890,
                    "sender_uid": 456789,
                    "content": f"{prefix} {stamp}",
                }
                async with s.post(url, json=payload) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{url}: {r.status} {await r.text()}")

            return send

        await _paced(rate, warmup, [sending(u, "warm") for u in urls])
        await _paced(rate, seconds, [sending(u, "lat") for u in urls])


class _Arrivals:
    """Latencies (ms) of the stamped messages reaching one queue since the last take()."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.expected = 0
        self.complete = asyncio.Event()

    async def on(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.monotonic_ns()
        content = str(msgspec.json.decode(msg.body).get("content", ""))
        if content.startswith("lat "):
            self.ms.append((now - int(content[4:])) / 1e6)
            if len(self.ms) >= self.expected:
                self.complete.set()

    async def take(self, expected: int, timeout: float = 3.0) -> list[float]:
        """Wait (bounded) for ``expected`` arrivals, then hand them over and start afresh."""
        self.expected = expected
        if len(self.ms) < expected:
            self.complete.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.complete.wait(), timeout)
        out, self.ms = self.ms, []
        return out


async def _round(
    sides: dict[str, str], rate: float, seconds: float, arrivals: dict[str, _Arrivals]
) -> dict[str, list[float]]:
    """One sender for all sides (name -> URL), interleaved message by message."""
    urls = list(sides.values())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.latency", str(rate), str(seconds), str(WARMUP), *urls
    )
    if await proc.wait() != 0:
        raise RuntimeError("latency sender failed")
    return {name: await arrivals[name].take(int(rate * seconds)) for name in sides}


def _ratios(ours: list[list[float]], limit: list[list[float]], p: float) -> str:
    return ", ".join(
        f"{percentile(o, p) / percentile(r, p):.2f}" for o, r in zip(ours, limit, strict=True)
    )


async def run(seconds: float, rate: float = 500, rounds: int = 3) -> list[Result]:
    """``seconds`` of sending to both sides at ``rate`` each, in ``rounds`` rounds."""
    ns = new_namespace()
    relay_exchange = f"{ns}.relay"
    conn = await aio_pika.connect(AMQP_URL)
    bridge = start("bridge", ns)
    port = free_port()
    relay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.relay", str(port), relay_exchange
    )
    try:
        ch = await conn.channel()
        await ch.declare_exchange(relay_exchange, aio_pika.ExchangeType.TOPIC, auto_delete=True)
        await asyncio.to_thread(wait_running, bridge)
        await wait_http(f"http://127.0.0.1:{port}/ready")
        sides = {"ours": (bridge.sim("/sim/inject"), f"{ns}.events"),
                 "relay": (f"http://127.0.0.1:{port}/sim/inject", relay_exchange)}  # fmt: skip
        arrivals: dict[str, _Arrivals] = {}
        for name, (_url, exchange) in sides.items():
            q = await ch.declare_queue(exclusive=True)
            await q.bind(exchange, "receive_message.#")
            arrivals[name] = _Arrivals()
            await q.consume(arrivals[name].on, no_ack=True)
        got: dict[str, list[list[float]]] = {"ours": [], "relay": []}
        per_round = seconds / rounds
        for i in range(rounds):
            # Who goes first in each period alternates round by round.
            order = ("ours", "relay") if i % 2 == 0 else ("relay", "ours")
            urls = {name: sides[name][0] for name in order}
            for name, ms in (await _round(urls, rate, per_round, arrivals)).items():
                got[name].append(ms)
    finally:
        relay.terminate()
        await relay.wait()
        await asyncio.to_thread(stop, bridge)
        await conn.close()
        await cleanup(ns)
    ours = [x for r in got["ours"] for x in r]
    limit = [x for r in got["relay"] for x in r]
    expected = int(rate * per_round) * rounds
    out = []
    for name, p in (("p50", 50), ("p99", 99), ("max", 100)):
        notes = [] if p == 100 else [f"rounds {_ratios(got['ours'], got['relay'], p)}"]
        if p == 50:
            notes.append(f"{len(ours)} of {expected} arrived (relay {len(limit)})")
        out.append(
            Result(
                "latency",
                f"inject -> consumer at {rate:.0f}/s, {name}",
                percentile(ours, p),
                "ms",
                percentile(limit, p),
                "aiohttp -> aio-pika relay, same POST and rate, own process",
                "ratio <= 1.2" if p < 100 else "",
                notes,
            )
        )
    return out


if __name__ == "__main__":
    asyncio.run(sender(sys.argv[4:], float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])))
