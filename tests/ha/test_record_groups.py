"""The command record's group commit, on the real broker: grouped, read back, failed per entry."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
import pytest

from bridge.bus.amqp import AmqpBus
from bridge.bus.base import OutMessage
from bridge.bus.record import StreamRecord
from bridge.core.routing import Names
from bridge.errors import PublishFailed
from tests.conftest import ACCOUNT

pytestmark = pytest.mark.rabbitmq


async def _bus(url: str, name: str) -> AmqpBus:
    return await AmqpBus.connect(url, name=name, retry_seconds=5)


async def test_concurrent_writes_share_messages_and_read_back_whole(rabbitmq, amqp_ns):
    names = Names(amqp_ns)
    a, b = await _bus(rabbitmq, "group-a"), await _bus(rabbitmq, "group-b")
    try:
        writer = StreamRecord(a, names.record_stream(ACCOUNT), hours=1)
        await writer.load()

        async def command(i: int) -> None:
            await writer.started(f"m-{i}")
            if i % 3:
                await writer.finish(f"m-{i}", f'{{"code":0,"id":{i}}}'.encode())

        await asyncio.gather(*(command(i) for i in range(300)))
        entries = 300 + sum(1 for i in range(300) if i % 3)
        assert writer.entries_written == entries
        # Grouped: far fewer messages than entries (300 callers at once, 2 writes in flight).
        assert writer.messages_written < entries / 5, (writer.messages_written, entries)
        print(
            f"FIGURES record group commit: {entries} entries in {writer.messages_written} messages"
        )

        reader = StreamRecord(b, names.record_stream(ACCOUNT), hours=1)
        await reader.load()
        for i in range(300):
            seen = reader.lookup(f"m-{i}")
            if i % 3:
                assert (seen.state, seen.reply) == ("done", f'{{"code":0,"id":{i}}}'.encode())
            else:
                assert seen.state == "started"
    finally:
        await a.close()
        await b.close()


async def test_an_unreadable_group_is_skipped_and_the_rest_is_read(rabbitmq, amqp_ns, caplog):
    names = Names(amqp_ns)
    stream = names.record_stream(ACCOUNT)
    a, b = await _bus(rabbitmq, "bad-a"), await _bus(rabbitmq, "bad-b")
    try:
        writer = StreamRecord(a, stream, hours=1)
        await writer.load()
        await writer.started("before")
        # Written by something else than a bridge: not msgpack, then entries of a wrong shape.
        for body in (b"\xc1 not msgpack", msgspec.msgpack.encode([["sent", "x", None]])):
            await a.publish("", stream, OutMessage(body=body, type="batch"), mandatory=True)
        await asyncio.gather(writer.started("after-1"), writer.started("after-2"))
        await writer.finish("after-1", b"{}")

        reader = StreamRecord(b, stream, hours=1)
        with caplog.at_level(logging.WARNING, logger="bridge.bus.record"):
            await reader.load()
        skipped = [r for r in caplog.records if "unreadable batch entry skipped" in r.message]
        assert len(skipped) == 2
        assert reader.lookup("before").state == "started"
        assert reader.lookup("after-1").state == "done"
        assert reader.lookup("after-2").state == "started"
        assert reader.lookup("x").state == "new"
    finally:
        await a.close()
        await b.close()


async def test_each_entry_of_a_group_fails_at_its_own_deadline(rabbitmq, amqp_ns):
    bus = await _bus(rabbitmq, "missing")
    # Never declared: every publish comes back unroutable, so nothing can be confirmed.
    record = StreamRecord(
        bus,
        Names(amqp_ns).record_stream(ACCOUNT),
        hours=1,
        write_timeout=0.3,
        finish_timeout=1.2,
    )
    try:
        t0 = time.monotonic()

        async def timed(write: asyncio.Future[None] | asyncio.Task[None]) -> float:
            with pytest.raises(PublishFailed, match="not confirmed: returned unroutable"):
                await write
            return time.monotonic() - t0

        started, done = await asyncio.gather(
            timed(asyncio.ensure_future(record.started("s"))),
            timed(asyncio.ensure_future(record.finish("d", b"{}"))),
        )
        # Each gives up when its next try would come after its own deadline.
        assert 0.05 < started <= 0.3 + 0.3, started
        assert 0.5 < done <= 1.2 + 0.3, done
        assert record.lookup("s").state == "new"
        assert record.lookup("d").state == "new"
        assert record.messages_written == 0
    finally:
        await bus.close()


async def test_a_write_cancelled_before_it_went_out_is_never_written(rabbitmq, amqp_ns):
    names = Names(amqp_ns)
    a, b = await _bus(rabbitmq, "cancel-a"), await _bus(rabbitmq, "cancel-b")
    try:
        writer = StreamRecord(a, names.record_stream(ACCOUNT), hours=1)
        await writer.load()
        # Fill both writes in flight; the third waits for a slot and is cancelled there.
        first = [asyncio.ensure_future(writer.started(f"busy-{i}")) for i in range(2)]
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(writer.started("withdrawn"))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(*first)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await writer.started("later")

        reader = StreamRecord(b, names.record_stream(ACCOUNT), hours=1)
        await reader.load()
        assert reader.lookup("withdrawn").state == "new"
        assert reader.lookup("busy-0").state == "started"
        assert reader.lookup("later").state == "started"
    finally:
        await a.close()
        await b.close()
