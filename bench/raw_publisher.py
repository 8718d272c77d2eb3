"""The ingest limit's publisher, in its own process like the bridge: plain aio-pika, confirmed
persistent publishes of one payload, ``in_flight`` at once, for ``seconds``.

Usage: python -m bench.raw_publisher EXCHANGE SECONDS [IN_FLIGHT]
"""

from __future__ import annotations

import asyncio
import sys
import time

import aio_pika

from bench.common import AMQP_URL
from bench.ingest import PAYLOAD


async def main(exchange: str, seconds: float, in_flight: int) -> None:
    conn = await aio_pika.connect(AMQP_URL)
    ch = await conn.channel(publisher_confirms=True)
    ex = await ch.get_exchange(exchange)
    sem = asyncio.Semaphore(in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        try:
            await ex.publish(
                aio_pika.Message(
                    PAYLOAD,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    type="receive_message.group_message",
                    headers={"account": "default"},
                ),
                "receive_message.group_message.default",
                mandatory=True,
            )
        finally:
            sem.release()

    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        await sem.acquire()
        t = asyncio.ensure_future(one())
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    await conn.close()


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1000)
    )
