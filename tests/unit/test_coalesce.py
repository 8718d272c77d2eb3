"""Coalesced AMQP writes (bridge.bus.coalesce): fewer system calls, same bytes in the same order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

from bridge.bus.coalesce import MAX_KEPT, MAX_TURNS, CoalescingTransportFactory, CoalescingWriter


class Sink:
    """A TCP server that keeps every byte it receives."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.got = asyncio.Event()
        self.port = 0
        self.peers: list[asyncio.StreamWriter] = []
        self.clients: list[asyncio.StreamWriter] = []

    async def on_client(self, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.peers.append(w)
        while chunk := await reader.read(65536):
            self.data += chunk
            self.got.set()

    async def received(self, n: int) -> bytes:
        async with asyncio.timeout(5):
            while len(self.data) < n:
                self.got.clear()
                await self.got.wait()
        return bytes(self.data)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    server = await asyncio.start_server(s.on_client, "127.0.0.1", 0)
    s.port = server.sockets[0].getsockname()[1]
    async with server:
        yield s
        for w in s.clients + s.peers:
            w.close()
        await asyncio.sleep(0.01)


async def _connect(sink: Sink) -> CoalescingWriter:
    factory = CoalescingTransportFactory()
    _, writer = await factory.create(URL(f"amqp://127.0.0.1:{sink.port}/"))
    assert isinstance(writer, CoalescingWriter)
    assert factory.writer is writer
    sink.clients.append(writer)
    # Let the server side settle: then nothing else is ready to run in the loop.
    async with asyncio.timeout(5):
        while not sink.peers:
            await asyncio.sleep(0.001)
    return writer


async def test_writes_of_one_turn_go_out_in_one_send_in_order(sink: Sink) -> None:
    w = await _connect(sink)
    chunks = [f"frame-{i};".encode() for i in range(100)]
    for c in chunks:
        w.write(c)
    assert w.sends == 0  # nothing yet: kept until the turn ends
    assert await sink.received(len(b"".join(chunks))) == b"".join(chunks)
    assert (w.writes, w.sends) == (100, 1)
    w.close()


async def test_a_lone_write_on_a_quiet_loop_goes_out_the_next_turn(sink: Sink) -> None:
    w = await _connect(sink)
    w.write(b"alone")
    # A timer, not a ready callback: the loop has nothing else to run, so the write goes
    # out at the next turn, before this wakes up.
    await asyncio.sleep(0.0001)
    assert w.sends == 1
    assert await sink.received(5) == b"alone"
    w.close()


async def test_writes_a_few_turns_apart_join_while_other_callbacks_run(sink: Sink) -> None:
    w = await _connect(sink)
    loop = asyncio.get_running_loop()

    def write_later(i: int) -> None:
        w.write(b"%d;" % i)
        if i < 3:
            # A callback ready in the next turn, as aiormq's channel lock hands over.
            loop.call_soon(write_later, i + 1)

    write_later(0)
    assert await sink.received(8) == b"0;1;2;3;"
    assert w.sends == 1

    # Busy for ever: the writes still go out, MAX_TURNS turns after the first at most.
    busy = True

    def spin() -> None:
        if busy:
            loop.call_soon(spin)

    spin()
    w.write(b"x")
    for _ in range(MAX_TURNS + 2):
        await asyncio.sleep(0)
    busy = False
    assert w.sends == 2
    assert await sink.received(9) == b"0;1;2;3;x"
    w.close()


async def test_many_writes_in_one_turn_go_out_every_max_kept(sink: Sink) -> None:
    w = await _connect(sink)
    for i in range(MAX_KEPT + 10):
        w.write(b"%05d" % i)
    assert w.sends == 1  # the first MAX_KEPT at once, without waiting for the turn
    expected = b"".join(b"%05d" % i for i in range(MAX_KEPT + 10))
    assert await sink.received(len(expected)) == expected
    assert w.sends == 2
    w.close()


async def test_close_writes_what_is_kept_first(sink: Sink) -> None:
    w = await _connect(sink)
    w.write(b"last words")
    w.close()
    await w.wait_closed()
    assert await sink.received(10) == b"last words"


async def test_kept_bytes_of_a_closed_transport_are_dropped_without_error(sink: Sink) -> None:
    w = await _connect(sink)
    w.transport.abort()
    w.write(b"too late")
    await asyncio.sleep(0)
    assert w.sends == 0


async def test_drain_does_not_cost_a_send_of_its_own(sink: Sink) -> None:
    w = await _connect(sink)
    for i in range(5):
        w.write(b"ack%d;" % i)
        await w.drain()  # aio-pika waits for this after every ack
    assert w.sends == 0
    assert await sink.received(25) == b"ack0;ack1;ack2;ack3;ack4;"
    assert w.sends == 1
    w.close()


async def test_an_unreachable_broker_raises_what_aiormq_raises() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(AMQPConnectionError):
        await CoalescingTransportFactory().create(URL(f"amqp://127.0.0.1:{port}/"))
