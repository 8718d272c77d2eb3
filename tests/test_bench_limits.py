"""The sends benchmark's durable limit does what a bridge command must, before it answers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aio_pika
import aiohttp
import pytest

from bench.common import free_port
from bench.limits import REPLY

pytestmark = pytest.mark.rabbitmq


def _spawn(url: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.limits", *args],
        env={**os.environ, "AMQP_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _get(url: str, seconds: float = 20) -> bytes:
    """The first answer of a server that is starting (bounded)."""
    async with asyncio.timeout(seconds), aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url) as r:
                    return await r.read()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)


async def test_durable_limit_replies_after_a_persistent_event_and_acks_the_request(
    rabbitmq: str, ns: str
) -> None:
    prefix = f"{ns}.durable"
    conn = await aio_pika.connect(rabbitmq)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ch = await conn.channel()
        commands = await ch.declare_exchange(
            f"{prefix}.commands", aio_pika.ExchangeType.TOPIC, durable=True
        )
        events_ex = await ch.declare_exchange(
            f"{prefix}.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        requests = await ch.declare_queue(f"{prefix}.send", durable=True)
        await requests.bind(commands, "send.default")
        watch = await ch.declare_queue(exclusive=True)
        await watch.bind(events_ex, "#")
        port = free_port()
        procs.append(_spawn(rabbitmq, "durable-responder", prefix))
        procs.append(_spawn(rabbitmq, "durable-rpc", str(port), prefix))

        body = await _get(f"http://127.0.0.1:{port}/x")

        assert body == REPLY
        event = await watch.get(timeout=5, fail=True)
        assert event is not None
        assert event.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert event.routing_key == "send_message.group_message.default"
        await event.ack()
        # The request was acked once answered: nothing waits in, or is held from, its queue.
        again = await ch.declare_queue(f"{prefix}.send", passive=True)
        assert again.declaration_result.message_count == 0
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        ch = await conn.channel()
        await ch.queue_delete(f"{prefix}.send")
        for x in ("commands", "events"):
            await ch.exchange_delete(f"{prefix}.{x}")
        await conn.close()
