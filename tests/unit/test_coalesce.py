"""Coalesced AMQP writes (bridge.bus.coalesce): fewer system calls, same bytes in the same order."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

from bridge.bus import coalesce
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


@pytest.fixture
def busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that is never idle long enough for a write to go out at once."""
    monkeypatch.setattr(coalesce, "IDLE_SECONDS", 3600.0)


async def _primed(sink: Sink) -> CoalescingWriter:
    # The very first write finds the connection idle and goes out at once.
    w = await _connect(sink)
    w.write(b"|")
    assert w.sends == 1
    await sink.received(1)
    sink.data.clear()
    return w


async def test_a_write_after_a_quiet_spell_goes_out_at_once(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coalesce, "IDLE_SECONDS", 0.05)
    w = await _connect(sink)
    w.write(b"first")
    assert w.sends == 1  # at once, not at the next loop turn
    w.write(b"second")
    assert w.sends == 1  # right behind it: kept for the next send
    await asyncio.sleep(0.1)
    assert w.sends == 2
    w.write(b"third")  # quiet for 0.1 s: at once again
    assert w.sends == 3
    assert await sink.received(16) == b"firstsecondthird"
    w.close()


async def test_writes_of_one_turn_go_out_in_one_send_in_order(sink: Sink, busy: None) -> None:
    w = await _primed(sink)
    chunks = [f"frame-{i};".encode() for i in range(100)]
    for c in chunks:
        w.write(c)
    assert w.sends == 1  # nothing more yet: kept until the turn ends
    assert await sink.received(len(b"".join(chunks))) == b"".join(chunks)
    assert (w.writes, w.sends) == (101, 2)
    w.close()


async def test_writes_a_turn_apart_join_and_quiet_turns_end_the_wait(
    sink: Sink, busy: None
) -> None:
    w = await _primed(sink)
    loop = asyncio.get_running_loop()

    def write_later(i: int) -> None:
        w.write(b"%d;" % i)
        if i < 3:
            # The next write a turn later, as aiormq's channel lock hands over.
            loop.call_soon(write_later, i + 1)

    write_later(0)
    assert await sink.received(8) == b"0;1;2;3;"
    assert w.sends == 2

    # A loop busy with other work but writing nothing: the wait ends after QUIET_TURNS turns.
    busy_loop = True

    def spin() -> None:
        if busy_loop:
            loop.call_soon(spin)

    spin()
    w.write(b"x")
    for _ in range(coalesce.QUIET_TURNS + 2):
        await asyncio.sleep(0)
    busy_loop = False
    assert w.sends == 3
    assert await sink.received(9) == b"0;1;2;3;x"
    w.close()


async def test_a_write_every_turn_goes_out_every_max_turns(sink: Sink, busy: None) -> None:
    w = await _primed(sink)
    loop = asyncio.get_running_loop()
    turns = 4 * MAX_TURNS

    def write_every_turn(i: int) -> None:
        w.write(b"%03d" % i)
        if i + 1 < turns:
            loop.call_soon(write_every_turn, i + 1)

    write_every_turn(0)
    expected = b"".join(b"%03d" % i for i in range(turns))
    assert await sink.received(len(expected)) == expected
    # Never a quiet turn: MAX_TURNS bounds the wait (about one send per MAX_TURNS turns).
    assert 3 <= w.sends - 1 <= 6, w.sends
    w.close()


async def test_many_writes_in_one_turn_go_out_every_max_kept(sink: Sink, busy: None) -> None:
    w = await _primed(sink)
    for i in range(MAX_KEPT + 10):
        w.write(b"%05d" % i)
    assert w.sends == 2  # the first MAX_KEPT at once, without waiting for the turn
    expected = b"".join(b"%05d" % i for i in range(MAX_KEPT + 10))
    assert await sink.received(len(expected)) == expected
    assert w.sends == 3
    w.close()


async def test_close_writes_what_is_kept_first(sink: Sink, busy: None) -> None:
    w = await _primed(sink)
    w.write(b"last words")
    assert w.sends == 1
    w.close()
    await w.wait_closed()
    assert await sink.received(10) == b"last words"


async def test_kept_bytes_of_a_closed_transport_are_dropped_without_error(
    sink: Sink, busy: None
) -> None:
    w = await _primed(sink)
    w.write(b"kept")
    w.transport.abort()
    w.write(b"too late")
    for _ in range(coalesce.QUIET_TURNS + 2):
        await asyncio.sleep(0)
    assert w.sends == 1


async def test_drain_does_not_cost_a_send_of_its_own(sink: Sink, busy: None) -> None:
    w = await _primed(sink)
    for i in range(5):
        w.write(b"ack%d;" % i)
        await w.drain()  # aio-pika waits for this after every ack
    assert w.sends == 1
    assert await sink.received(25) == b"ack0;ack1;ack2;ack3;ack4;"
    assert w.sends == 2
    w.close()


async def test_an_unreachable_broker_raises_what_aiormq_raises() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(AMQPConnectionError):
        await CoalescingTransportFactory().create(URL(f"amqp://127.0.0.1:{port}/"))


class _Provider:
    """aiormq's SSLContextProvider as the factory sees it: get_context()."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    async def get_context(self) -> ssl.SSLContext:
        return self.context


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl, part of Debian's base)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_amqps_goes_through_tls_with_the_context_aiormq_provides(
    tls_cert: tuple[Path, Path],
) -> None:
    cert, key = tls_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sink = Sink()
    server = await asyncio.start_server(sink.on_client, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=str(cert))
    async with server:
        _, w = await CoalescingTransportFactory().create(
            URL(f"amqps://127.0.0.1:{port}/"), ssl_context_provider=_Provider(client_ctx)
        )
        assert w.get_extra_info("ssl_object") is not None
        for i in range(20):
            w.write(b"%02d" % i)
        assert await sink.received(40) == b"".join(b"%02d" % i for i in range(20))
        w.close()
        await w.wait_closed()
        for peer in sink.peers:
            peer.close()
