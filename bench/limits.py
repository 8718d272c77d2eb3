"""Raw-limit servers for the HTTP parts, each a process like the adapter and the bridge.

python -m bench.limits json PORT FILE      aiohttp answering GET with FILE's bytes
python -m bench.limits rpc PORT EXCHANGE   aiohttp doing one aio-pika request/reply per GET
python -m bench.limits responder EXCHANGE  plain aio-pika consumer answering each request
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import aio_pika
from aiohttp import web

from bench.common import AMQP_URL

REPLY = '{"code":0,"id":10001,"info":"发送正常","status":"发送成功"}'.encode()


def json_server(port: int, path: str) -> None:
    body = Path(path).read_bytes()

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def rpc_app(exchange: str) -> web.Application:
    conn = await aio_pika.connect(AMQP_URL)
    ch = await conn.channel()
    ex = await ch.get_exchange(exchange)
    replies = await ch.declare_queue(exclusive=True)
    pending: dict[str, asyncio.Future[bytes]] = {}

    async def on_reply(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        fut = pending.pop(msg.correlation_id or "", None)
        if fut is not None and not fut.done():
            fut.set_result(msg.body)

    await replies.consume(on_reply, no_ack=True)

    async def handle(_request: web.Request) -> web.Response:
        corr = uuid.uuid4().hex
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        pending[corr] = fut
        await ex.publish(
            aio_pika.Message(b'{"command":"send_group_message","uid":67890,"content":"x"}',
                             reply_to=replies.name, correlation_id=corr, message_id=corr),
            routing_key="send.default",
        )  # fmt: skip
        return web.Response(body=await asyncio.wait_for(fut, 30), content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def responder(exchange: str) -> None:
    conn = await aio_pika.connect(AMQP_URL)
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=64)
    q = await ch.declare_queue(exclusive=True)
    await q.bind(exchange, "send.default")

    async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        await ch.default_exchange.publish(
            aio_pika.Message(REPLY, correlation_id=msg.correlation_id),
            routing_key=msg.reply_to or "",
        )
        await msg.ack()

    await q.consume(on)
    await asyncio.Future()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "json":
        json_server(int(sys.argv[2]), sys.argv[3])
    elif mode == "rpc":
        web.run_app(
            rpc_app(sys.argv[3]),
            host="127.0.0.1",
            port=int(sys.argv[2]),
            access_log=None,
            print=None,
        )
    else:
        asyncio.run(responder(sys.argv[2]))
