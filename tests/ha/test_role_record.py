"""The broker lease (active role) and the replicated command record, on the real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
import aiohttp
import msgspec
import pytest

from bridge.bus.amqp import AmqpBus
from bridge.bus.base import OutMessage
from bridge.bus.lease import BrokerLease
from bridge.bus.record import StreamRecord
from bridge.core.routing import Names
from bridge.service import Bridge
from bridge.upstream.sim.account import SimulatedAccount
from tests.conftest import ACCOUNT
from tests.ha.common import amqp_bus as _bus
from tests.ha.common import events_queue, ha_bridge, inject_message
from tests.proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq


async def test_the_stream_record_is_shared_and_read_to_its_end(rabbitmq, amqp_ns):
    names = Names(amqp_ns)
    a, b = await _bus(rabbitmq, "rec-a"), await _bus(rabbitmq, "rec-b")
    try:
        first = StreamRecord(a, names.record_stream(ACCOUNT), hours=1)
        await first.load()
        await first.started("s-1")
        await first.started("d-1")
        await first.finish("d-1", b'{"code":0}')
        second = StreamRecord(b, names.record_stream(ACCOUNT), hours=1)
        started = time.monotonic()
        await second.load()
        took = time.monotonic() - started
        print(f"FIGURES record read to its end: {second.loaded} entries in {took:.3f}s")
        assert second.lookup("s-1").state == "started"
        done = second.lookup("d-1")
        assert (done.state, done.reply) == ("done", b'{"code":0}')
        assert second.lookup("never").state == "new"
    finally:
        await a.close()
        await b.close()


async def _holders(leases: list[BrokerLease]) -> list[int]:
    await asyncio.sleep(0.3)
    return [i for i, lease in enumerate(leases) if lease.holds()]


async def test_one_holder_takeover_on_death_and_release_and_extra_tokens_are_harmless(
    rabbitmq, amqp_ns
):
    names = Names(amqp_ns)
    queue = names.active_queue(ACCOUNT)
    buses = [await _bus(rabbitmq, f"lease-{i}") for i in range(3)]
    leases = [BrokerLease(b, queue, "classic", me=f"b{i}") for i, b in enumerate(buses)]
    try:
        for lease in leases:
            await lease.join()
        async with asyncio.timeout(5):
            await leases[0].acquire()
        assert await _holders(leases) == [0]
        # A second token (two bridges starting at once) gives no second holder.
        await buses[1].publish("", queue, OutMessage(body=b"token"), mandatory=True)
        assert await _holders(leases) == [0]
        # The holder dies (its connection goes): the next consumer takes over.
        died = time.monotonic()
        await buses[0].close()
        async with asyncio.timeout(5):
            await leases[1].acquire()
        takeover = time.monotonic() - died
        assert await _holders(leases) == [1]
        # A clean release hands over too.
        await leases[1].release()
        async with asyncio.timeout(5):
            await leases[2].acquire()
        assert [i for i, lease in enumerate(leases) if lease.holds()] == [2]
        print(f"FIGURES lease takeover after the holder's connection closed: {takeover:.3f}s")
        ch = await buses[2].connection.channel()
        q = await ch.declare_queue(queue, passive=True)
        assert q.declaration_result.message_count == 0, "an extra token was left behind"
        await ch.close()
    finally:
        for b in buses[1:]:
            await b.close()


@asynccontextmanager
async def _bridge(
    url: str, ns: str, tmp_path, tag: str
) -> AsyncIterator[tuple[Bridge, SimulatedAccount, asyncio.Task[None]]]:
    bus = await _bus(url, f"bridge-{tag}")
    bridge, sim = ha_bridge(bus, ns, tmp_path / tag, me=tag)
    task = asyncio.create_task(bridge.run())
    try:
        yield bridge, sim, task
    finally:
        bridge.request_stop()
        async with asyncio.timeout(20):
            await asyncio.gather(task, return_exceptions=True)
        await bus.close()


async def test_a_standby_is_passive_and_a_clean_stop_hands_over_without_a_stop(
    rabbitmq, amqp_ns, tmp_path
):
    consumer = await aio_pika.connect(rabbitmq)
    try:
        q = await events_queue(consumer, amqp_ns, "#")
        seen: list[tuple[str, dict]] = []

        async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append((msg.routing_key or "", msgspec.json.decode(msg.body)))

        await q.consume(on, no_ack=True)
        async with _bridge(rabbitmq, amqp_ns, tmp_path, "a") as (a, sim_a, task_a):
            async with asyncio.timeout(10):
                await a.started.wait()
            async with _bridge(rabbitmq, amqp_ns, tmp_path, "b") as (b, sim_b, _task_b):
                await asyncio.sleep(1.0)
                # The standby: no upstream (its sim never listened), nothing published.
                assert sim_b.bound is None and not b.started.is_set()
                async with aiohttp.ClientSession() as s:
                    assert await inject_message(s, sim_a, "hi") == 200
                await asyncio.sleep(0.5)
                before = len(seen)
                assert [k for k, _ in seen].count("receive_message.friend_message.default") == 1
                a.request_stop()
                await task_a
                handed = time.monotonic()
                async with asyncio.timeout(10):
                    await b.started.wait()
                took = time.monotonic() - handed
                await asyncio.sleep(0.3)
                keys = [k for k, _ in seen]
                print(
                    f"FIGURES hand-over at a clean stop: standby active {took:.2f}s later;"
                    f" events before {before}, after {len(seen)}"
                )
                assert "event.stop.default" not in keys, "the active published stop at hand-over"
                assert "event.login.default" in keys[before:], "the new active did not log in"
    finally:
        await consumer.close()


async def test_an_active_that_loses_its_broker_stops_and_steps_down_when_another_took_over(
    rabbitmq, amqp_ns, tmp_path
):
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    consumer = await aio_pika.connect(rabbitmq)
    bus_a = await AmqpBus.connect(
        f"amqp://guest:guest@127.0.0.1:{proxy.port}/?reconnect_interval=0.2",
        name="cut-a",
        retry_seconds=5,
    )
    a, sim_a = ha_bridge(bus_a, amqp_ns, tmp_path / "a", me="a", role_grace=1.0)
    task_a = asyncio.create_task(a.run())
    try:
        q = await events_queue(consumer, amqp_ns, "receive_message.#")
        contents: list[str] = []

        async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            contents.append(msgspec.json.decode(msg.body)["content"])

        await q.consume(on, no_ack=True)
        async with asyncio.timeout(10):
            await a.started.wait()
        async with _bridge(rabbitmq, amqp_ns, tmp_path, "b") as (b, _sim_b, _task_b):
            await asyncio.sleep(0.5)
            assert not b.started.is_set()
            proxy.cut()
            cut = time.monotonic()
            async with asyncio.timeout(10):
                await b.started.wait()
            took = time.monotonic() - cut
            # A cannot reach the broker: its upstream still takes events, it publishes none.
            async with aiohttp.ClientSession() as s:
                assert await inject_message(s, sim_a, "late") == 200
            proxy.restore()
            async with asyncio.timeout(20):
                await task_a
            await asyncio.sleep(0.5)
            print(
                f"FIGURES role lost: standby active {took:.2f}s after the cut; the old active"
                f" stepped down: {a.demoted}, events it held and dropped: {a.outbox.discarded}"
            )
            assert a.demoted and b.started.is_set()
            assert "late" not in contents, "a bridge that lost its role published later"
    finally:
        a.request_stop()
        await asyncio.gather(task_a, return_exceptions=True)
        await consumer.close()
        await bus_a.close()
        await proxy.close()
