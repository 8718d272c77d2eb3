"""The event-latency limit: a minimal aiohttp -> aio-pika relay of the same hop as the bridge's.

It takes the POST the latency sender makes to the bridge's ``/sim/inject`` (a JSON object),
checks that it is one, and publishes the body persistent with publisher confirms to EXCHANGE
under the routing key of a received group message, then answers. Its own process, like the
bridge; nothing else (no validation, no contacts, no metrics, no logging).

Usage: python -m bench.relay PORT EXCHANGE
"""

from __future__ import annotations

import sys

import aio_pika
import msgspec
from aiohttp import web

from bench.common import AMQP_URL

KEY = "receive_message.group_message.default"
OK = b'{"code":0,"status":"injected"}'


async def relay_app(exchange: str) -> web.Application:
    conn = await aio_pika.connect(AMQP_URL)
    ch = await conn.channel(publisher_confirms=True)
    ex = await ch.get_exchange(exchange)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if not isinstance(msgspec.json.decode(body), dict):
            return web.Response(status=400)
        await ex.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            KEY,
        )
        return web.Response(body=OK, content_type="application/json")

    async def ready(_request: web.Request) -> web.Response:
        return web.Response(body=b"{}", content_type="application/json")

    async def close(_app: web.Application) -> None:
        await conn.close()

    app = web.Application()
    app.router.add_post("/sim/inject", handle)
    app.router.add_get("/ready", ready)
    app.on_cleanup.append(close)
    return app


if __name__ == "__main__":
    web.run_app(
        relay_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None
    )
