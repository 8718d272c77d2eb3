"""The command record's group commit, on the real broker: grouped, read back, failed per entry."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import msgspec
import pytest

from bridge.bus.base import OutMessage
from bridge.bus.record import StreamRecord
from bridge.core.routing import Names
from bridge.errors import PublishFailed
from tests.conftest import ACCOUNT
from tests.ha.common import amqp_bus

pytestmark = pytest.mark.rabbitmq


@asynccontextmanager
async def _writer_and_reader(
    url: str, ns: str, tag: str
) -> AsyncIterator[tuple[StreamRecord, Callable[[], Awaitable[StreamRecord]]]]:
    """A loaded record on one connection, and a function that reads it anew on another."""
    stream = Names(ns).record_stream(ACCOUNT)
    a, b = await amqp_bus(url, f"{tag}-a"), await amqp_bus(url, f"{tag}-b")
    try:
        writer = StreamRecord(a, stream, hours=1)
        await writer.load()

        async def read() -> StreamRecord:
            reader = StreamRecord(b, stream, hours=1)
            await reader.load()
            return reader

        yield writer, read
    finally:
        await a.close()
        await b.close()


def _unroutable(bus, ns: str, **timeouts: float) -> StreamRecord:
    # Never declared: every publish comes back unroutable, so nothing can be confirmed.
    return StreamRecord(bus, Names(ns).record_stream(ACCOUNT), hours=1, **timeouts)


async def test_concurrent_writes_share_messages_and_read_back_whole(rabbitmq, amqp_ns):
    async with _writer_and_reader(rabbitmq, amqp_ns, "group") as (writer, read):

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

        reader = await read()
        for i in range(300):
            seen = reader.lookup(f"m-{i}")
            if i % 3:
                assert (seen.state, seen.reply) == ("done", f'{{"code":0,"id":{i}}}'.encode())
            else:
                assert seen.state == "started"


async def test_an_unreadable_group_is_skipped_and_the_rest_is_read(rabbitmq, amqp_ns, caplog):
    async with _writer_and_reader(rabbitmq, amqp_ns, "bad") as (writer, read):
        await writer.started("before")
        # Written by something else than a bridge: not msgpack, then entries of a wrong shape.
        for body in (b"\xc1 not msgpack", msgspec.msgpack.encode([["sent", "x", None]])):
            message = OutMessage(body=body, type="batch")
            await writer._bus.publish("", writer.stream, message, mandatory=True)
        await asyncio.gather(writer.started("after-1"), writer.started("after-2"))
        await writer.finish("after-1", b"{}")

        with caplog.at_level(logging.WARNING, logger="bridge.bus.record"):
            reader = await read()
        skipped = [r for r in caplog.records if "unreadable batch entry skipped" in r.message]
        assert len(skipped) == 2
        assert reader.lookup("before").state == "started"
        assert reader.lookup("after-1").state == "done"
        assert reader.lookup("after-2").state == "started"
        assert reader.lookup("x").state == "new"


async def test_each_entry_of_a_group_fails_at_its_own_deadline(rabbitmq, amqp_ns):
    bus = await amqp_bus(rabbitmq, "missing")
    record = _unroutable(bus, amqp_ns, write_timeout=0.3, finish_timeout=1.2)
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
    async with _writer_and_reader(rabbitmq, amqp_ns, "cancel") as (writer, read):
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

        reader = await read()
        assert reader.lookup("withdrawn").state == "new"
        assert reader.lookup("busy-0").state == "started"
        assert reader.lookup("later").state == "started"


async def test_an_entry_waiting_behind_stuck_writes_fails_at_its_own_deadline(rabbitmq, amqp_ns):
    bus = await amqp_bus(rabbitmq, "stuck")
    record = _unroutable(bus, amqp_ns, write_timeout=0.3, finish_timeout=3.0)
    try:
        # Two group messages retrying for 3 s fill both writes in flight.
        ahead = [asyncio.ensure_future(record.finish(f"d-{i}", b"{}")) for i in range(2)]
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        with pytest.raises(PublishFailed, match=r"not written within 0\.3s"):
            await record.started("s")
        assert time.monotonic() - t0 < 1.0
        for write in ahead:
            with pytest.raises(PublishFailed):
                await write
        assert record.lookup("s").state == "new"
    finally:
        await bus.close()


async def test_close_fails_what_waits_and_starts_nothing_more(rabbitmq, amqp_ns):
    bus = await amqp_bus(rabbitmq, "closing")
    record = _unroutable(bus, amqp_ns, write_timeout=30.0, finish_timeout=30.0)
    try:
        writes = [asyncio.ensure_future(record.started(f"s-{i}")) for i in range(3)]
        await asyncio.sleep(0.05)  # two in flight (retrying), one waiting its turn
        await record.close(grace=0.1)
        for write in writes:
            with pytest.raises(PublishFailed, match="closed"):
                await write
        assert not record._writers
        with pytest.raises(PublishFailed, match="closed"):
            await record.started("after")
        assert record.messages_written == 0
    finally:
        await bus.close()
