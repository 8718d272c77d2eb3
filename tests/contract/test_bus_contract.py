"""One suite, two buses: the in-memory bus must behave like RabbitMQ where the bridge relies on it."""

from __future__ import annotations

import asyncio

import pytest

from bridge.bus.base import Delivery, OutMessage
from bridge.bus.rpc import RpcClient
from bridge.core.commands import GetClientInfo
from bridge.core.routing import Names
from bridge.errors import NoRoute, RpcTimeout


async def collect(bus, queue: str, *, prefetch: int = 10, ack: bool = True):
    got: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handler(d: Delivery) -> None:
        if ack:
            await d.ack()
        await got.put(d)

    sub = await bus.consume(queue, handler, prefetch=prefetch)
    return got, sub


async def next_of(q: asyncio.Queue[Delivery], timeout: float = 5.0) -> Delivery:
    async with asyncio.timeout(timeout):
        return await q.get()


async def test_topic_wildcards_route_like_rabbitmq(bus_factory, ns):
    bus = await bus_factory()
    ex = f"{ns}.events"
    await bus.declare_exchange(ex)
    patterns = {
        "all_received": "receive_message.#",
        "events": "event.*.*",
        "one_account": "*.*.bot1",
        "groups": "receive_message.group_message.*",
    }
    queues = {}
    for name, pattern in patterns.items():
        q = await bus.declare_queue("", exclusive=True)
        await bus.bind(q, ex, pattern)
        queues[name] = (await collect(bus, q))[0]

    keys = [
        "receive_message.group_message.bot1",
        "receive_message.friend_message.bot2",
        "event.new_group_member.bot2",
        "send_message.group_message.bot1",
    ]
    for key in keys:
        assert await bus.publish(ex, key, OutMessage(body=key.encode()), mandatory=True)
    expected = {
        "all_received": keys[:2],
        "events": keys[2:3],
        "one_account": [keys[0], keys[3]],
        "groups": keys[:1],
    }
    for name, want in expected.items():
        got = [(await next_of(queues[name])).routing_key for _ in want]
        assert got == want, name
        assert queues[name].empty()


async def test_unroutable_mandatory_publish_is_reported(bus_factory, ns):
    bus = await bus_factory()
    await bus.declare_exchange(f"{ns}.events")
    assert not await bus.publish(
        f"{ns}.events", "nobody.listens.here", OutMessage(body=b"x"), mandatory=True
    )


async def test_properties_survive_the_trip(bus_factory, ns):
    bus = await bus_factory()
    q = await bus.declare_queue("", exclusive=True)
    got, _ = await collect(bus, q)
    msg = OutMessage(
        body=b'{"a":1}',
        message_id="m1",
        correlation_id="c1",
        reply_to="r1",
        type="event.login",
        headers={"account": "default"},
    )
    assert await bus.publish("", q, msg, mandatory=True)
    d = await next_of(got)
    assert (d.body, d.message_id, d.correlation_id, d.reply_to, d.type) == (
        b'{"a":1}',
        "m1",
        "c1",
        "r1",
        "event.login",
    )
    assert d.headers["account"] == "default"
    assert d.app_id == "openqq-bridge"
    assert d.content_type == "application/json"
    assert not d.redelivered


async def test_requeue_redelivers_and_reject_dead_letters(bus_factory, ns):
    bus = await bus_factory()
    dlx = f"{ns}.dead"
    await bus.declare_exchange(dlx)
    dead_q = await bus.declare_queue("", exclusive=True)
    await bus.bind(dead_q, dlx, "#")
    dead, _ = await collect(bus, dead_q)

    work = await bus.declare_queue(
        f"{ns}.work", exclusive=True, arguments={"x-dead-letter-exchange": dlx}
    )
    seen: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handler(d: Delivery) -> None:
        await seen.put(d)
        await d.reject(requeue=not d.redelivered)

    await bus.consume(work, handler, prefetch=1)
    await bus.publish("", work, OutMessage(body=b"poison", message_id="p"), mandatory=True)
    first, second = await next_of(seen), await next_of(seen)
    assert (first.redelivered, second.redelivered) == (False, True)
    d = await next_of(dead)
    assert (d.body, d.message_id) == (b"poison", "p")


async def test_unacked_messages_respect_prefetch(bus_factory, ns):
    bus = await bus_factory()
    q = await bus.declare_queue(f"{ns}.slow", exclusive=True)
    got, _ = await collect(bus, q, prefetch=2, ack=False)
    for i in range(5):
        await bus.publish("", q, OutMessage(body=str(i).encode()), mandatory=True)
    first = [await next_of(got), await next_of(got)]
    await asyncio.sleep(0.2)
    assert got.empty(), "a third message arrived although two were unacked"
    await first[0].ack()
    third = await next_of(got)
    assert third.body == b"2"


async def test_expired_messages_are_dead_lettered(bus_factory, ns):
    bus = await bus_factory()
    dlx = f"{ns}.dead"
    await bus.declare_exchange(dlx)
    dead_q = await bus.declare_queue("", exclusive=True)
    await bus.bind(dead_q, dlx, "#")
    dead, _ = await collect(bus, dead_q)
    work = await bus.declare_queue(
        f"{ns}.exp", exclusive=True, arguments={"x-dead-letter-exchange": dlx}
    )
    await bus.publish("", work, OutMessage(body=b"stale", expiration_ms=50), mandatory=True)
    await asyncio.sleep(0.2)
    got, _ = await collect(bus, work)
    d = await next_of(dead)
    assert d.body == b"stale"
    await asyncio.sleep(0.1)
    assert got.empty()


async def test_rpc_round_trip_timeout_and_no_route(bus_factory, ns):
    server_bus, client_bus = await bus_factory(), await bus_factory()
    names = Names(ns)
    await server_bus.declare_exchange(names.commands)
    q = await server_bus.declare_queue(f"{ns}.svc.control", exclusive=True)
    await server_bus.bind(q, names.commands, "control.svc")

    async def echo(d: Delivery) -> None:
        await server_bus.publish(
            "",
            d.reply_to,
            OutMessage(body=b"pong:" + d.body, correlation_id=d.correlation_id),
            mandatory=True,
        )
        await d.ack()

    await server_bus.consume(q, echo, prefetch=10)
    rpc = RpcClient(client_bus, names)
    await rpc.start()
    try:
        replies = await asyncio.gather(*(rpc.call("svc", GetClientInfo()) for _ in range(20)))
        assert replies == [b'pong:{"command":"get_client_info"}'] * 20
        with pytest.raises(NoRoute):
            await rpc.call("nobody", GetClientInfo(), timeout=2)
    finally:
        await rpc.close()

    silent = await server_bus.declare_queue(f"{ns}.quiet.control", exclusive=True)
    await server_bus.bind(silent, names.commands, "control.quiet")
    rpc2 = RpcClient(client_bus, names)
    await rpc2.start()
    try:
        with pytest.raises(RpcTimeout):
            await rpc2.call("quiet", GetClientInfo(), timeout=0.3)
    finally:
        await rpc2.close()
