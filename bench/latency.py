"""Latency: POST /sim/inject -> bridge -> RabbitMQ -> a plain aio-pika consumer, at a fixed rate.

Limit, in the same run: the minimal relay of the same hop (bench/relay.py, its own process): an
aiohttp server taking the same POST and publishing it confirmed and persistent with aio-pika to
the same broker, drained by the same consumer. Both run for the whole part; rounds alternate
between them (ours, relay, relay, ours, ...) so that a machine getting busier or quieter weighs
on both, and each round's ratio is reported beside the pooled figures. (Measuring both at once,
message by message, doubled the load: on this shared 2-core machine both went to seconds.)

The sender runs in its own process (one per round, a fresh connection pool, warmed up for
``WARMUP`` seconds before it stamps) and stamps each message with CLOCK_MONOTONIC (shared by
all processes of the machine); the consumer subtracts it on arrival.

Sender usage: python -m bench.latency URL RATE SECONDS WARMUP T0
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
    t0: float, rate: float, seconds: float, send: Callable[[int], Awaitable[None]]
) -> None:
    """``rate`` sends a second from CLOCK_MONOTONIC ``t0`` on, for ``seconds``."""
    tasks = []
    for i in range(int(rate * seconds)):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(send(time.monotonic_ns())))
    await asyncio.gather(*tasks)


async def sender(url: str, rate: float, seconds: float, warmup: float, t0: float) -> None:
    """One side's sender, in its own process: from ``t0`` on, ``warmup`` seconds unstamped,
    then ``seconds`` stamped."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:

        def sending(prefix: str) -> Callable[[int], Awaitable[None]]:
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

        await _paced(t0, rate, warmup, sending("warm"))
        await _paced(t0 + warmup, rate, seconds, sending("lat"))


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


async def _round(url: str, rate: float, seconds: float, arrivals: _Arrivals) -> list[float]:
    """One round of one side: its own sender process, started a second from now."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.latency", url, str(rate), str(seconds), str(WARMUP),
        str(time.monotonic() + 1.0),
    )  # fmt: skip
    if await proc.wait() != 0:
        raise RuntimeError(f"latency sender for {url} failed")
    return await arrivals.take(int(rate * seconds))


def _ratios(ours: list[list[float]], limit: list[list[float]], p: float) -> str:
    return ", ".join(
        f"{percentile(o, p) / percentile(r, p):.2f}" for o, r in zip(ours, limit, strict=True)
    )


async def run(seconds: float, rate: float = 500, rounds: int = 3) -> list[Result]:
    """``seconds`` of sending per side, in ``rounds`` alternating rounds."""
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
            for name in ("ours", "relay") if i % 2 == 0 else ("relay", "ours"):
                got[name].append(await _round(sides[name][0], rate, per_round, arrivals[name]))
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
    url, rate, seconds, warmup, t0 = sys.argv[1:6]
    asyncio.run(sender(url, float(rate), float(seconds), float(warmup), float(t0)))
