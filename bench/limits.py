"""Raw-limit servers for the HTTP parts, each a process like the adapter and the bridge.

python -m bench.limits json PORT FILE                aiohttp answering GET with FILE's bytes
python -m bench.limits rpc PORT EXCHANGE             aiohttp doing one aio-pika request/reply per GET
python -m bench.limits responder EXCHANGE            plain aio-pika consumer answering each request
python -m bench.limits durable-rpc PORT PREFIX       the same with a bridge command's guarantees
python -m bench.limits durable-responder PREFIX      its responder

The durable pair does what a send through adapter and bridge must do, and nothing else: the
server publishes a persistent request on a durable queue (``PREFIX.send``, bound to the topic
exchange ``PREFIX.commands``), mandatory and confirmed, and answers the HTTP request when the
reply comes; the responder consumes that queue with manual acks, publishes a persistent event
to the topic exchange ``PREFIX.events`` (mandatory, confirmed), then the reply (confirmed),
then acks. The server consumes the events from its own queue bound to ``PREFIX.events``, as
the adapter consumes its event queue (exclusive, manual acks, prefetch 1000). ``bench.http``
declares the exchanges and the request queue and deletes them afterwards.
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
REQUEST = b'{"command":"send_group_message","uid":67890,"content":"x"}'
EVENT = (
    b'{"post_type":"send_message","type":"group_message","id":10001,"content":"x",'
    b'"group":"bench","group_uid":67890,"sender":"bench","sender_uid":10000,"code":0}'
)


def json_server(port: int, path: str) -> None:
    body = Path(path).read_bytes()

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def rpc_app(exchange: str, *, durable: bool = False) -> web.Application:
    """One request/reply per GET: transient, or (``durable``) a bridge command's guarantees.

    Durable: ``exchange`` is the PREFIX of the names (see the module docstring).
    """
    conn = await aio_pika.connect(AMQP_URL)
    ch = await conn.channel()  # publisher confirms
    ex = await ch.get_exchange(f"{exchange}.commands" if durable else exchange)
    replies = await ch.declare_queue(exclusive=True)
    pending: dict[str, asyncio.Future[bytes]] = {}

    async def on_reply(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        fut = pending.pop(msg.correlation_id or "", None)
        if fut is not None and not fut.done():
            fut.set_result(msg.body)

    await replies.consume(on_reply, no_ack=True)

    if durable:
        events_ch = await conn.channel()
        await events_ch.set_qos(prefetch_count=1000)
        events = await events_ch.declare_queue(exclusive=True, auto_delete=True)
        await events.bind(f"{exchange}.events", "#")

        async def on_event(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            await msg.ack()

        await events.consume(on_event)

    mode = aio_pika.DeliveryMode.PERSISTENT if durable else aio_pika.DeliveryMode.NOT_PERSISTENT

    async def handle(_request: web.Request) -> web.Response:
        corr = uuid.uuid4().hex
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        pending[corr] = fut
        await ex.publish(
            aio_pika.Message(REQUEST, reply_to=replies.name, correlation_id=corr, message_id=corr,
                             delivery_mode=mode),
            routing_key="send.default", mandatory=durable,
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


async def durable_responder(prefix: str) -> None:
    """Consume PREFIX.send (manual acks): confirmed persistent event, then reply, then ack."""
    conn = await aio_pika.connect(AMQP_URL)
    consume_ch = await conn.channel()
    await consume_ch.set_qos(prefetch_count=64)
    pub = await conn.channel()  # publisher confirms
    events = await pub.get_exchange(f"{prefix}.events")
    q = await consume_ch.declare_queue(f"{prefix}.send", passive=True)

    async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        await events.publish(
            aio_pika.Message(EVENT, message_id=msg.message_id, type="send_message.group_message",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="send_message.group_message.default", mandatory=True,
        )  # fmt: skip
        await pub.default_exchange.publish(
            aio_pika.Message(REPLY, correlation_id=msg.correlation_id),
            routing_key=msg.reply_to or "",
            mandatory=True,
        )
        await msg.ack()

    await q.consume(on)
    await asyncio.Future()


def _serve(app: object, port: int) -> None:
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)  # type: ignore[arg-type]


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "json":
        json_server(int(sys.argv[2]), sys.argv[3])
    elif mode == "rpc":
        _serve(rpc_app(sys.argv[3]), int(sys.argv[2]))
    elif mode == "durable-rpc":
        _serve(rpc_app(sys.argv[3], durable=True), int(sys.argv[2]))
    elif mode == "durable-responder":
        asyncio.run(durable_responder(sys.argv[2]))
    else:
        asyncio.run(responder(sys.argv[2]))
