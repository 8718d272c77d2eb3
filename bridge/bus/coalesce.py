"""Coalesced writes on the AMQP connection: what one event-loop turn writes goes out in one send.

aiormq writes each frame (a publish, an ack, a confirm's method) to the socket as soon as its
writer task takes it from the queue, and asyncio's transport sends it at once when nothing is
buffered: one ``send`` system call per frame. Under load the bridge writes four or five frames
per command (the record entry, the event, the reply, the ack) and a loop turn handles many
commands, so these calls were the largest single cost of the bridge and of the adapter (27 %
and 15 % of their CPU time, py-spy under ``python -m bench --parts sends``).

:class:`CoalescingWriter` sends the first write after a quiet spell (``IDLE_SECONDS``
without a send) at once: an event of a quiet account waits for nothing. Under load it keeps
what is written and hands it to the transport as one buffer once ``QUIET_TURNS`` loop turns
pass without a new write, at most ``MAX_TURNS`` turns after the first or at ``MAX_KEPT``
writes. ``close`` and ``write_eof`` write what is kept first; ``drain`` is flow control only,
as asyncio's own. The order of the bytes is the order of the writes.
:class:`CoalescingTransportFactory` opens the connection (plain or TLS, as aiormq's own
factories do) with that writer; ``bridge.bus.amqp`` passes it to every connection it makes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiormq.exceptions import AMQPConnectionError
from yarl import URL

try:
    from aiormq.connection import TransportFactory
except ImportError:  # aiormq before 7.2 (aio-pika 9) has no pluggable transport: plain writes
    TransportFactory = object  # type: ignore[assignment,misc]

#: Whether this aiormq takes a transport factory (``bridge.bus.amqp`` passes one only then).
SUPPORTED = TransportFactory is not object

#: asyncio's own default buffer limit of a stream reader (what open_connection uses).
READ_LIMIT = 2**16
#: Loop turns a write waits at most for more writes to join it.
MAX_TURNS = 8
#: Seconds without a send after which a write goes out at once instead of waiting.
IDLE_SECONDS = 0.001
#: Turns in a row without a write that end the wait (aiormq's frames come a turn or two apart).
QUIET_TURNS = 2
#: Writes kept at most before they go out.
MAX_KEPT = 256


class CoalescingWriter(asyncio.StreamWriter):
    """A StreamWriter whose writes of one loop turn reach the transport as one write."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: asyncio.BaseProtocol,
        reader: asyncio.StreamReader | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._event_loop = loop
        self._kept: list[bytes] = []
        self._flush_soon = False
        self._turns = 0
        #: ``writes`` when the last loop turn began: a turn that adds none ends the wait.
        self._seen = 0
        self._quiet = 0
        self._last_send = float("-inf")
        #: Writes and transport writes so far (tests and benchmarks read their ratio).
        self.writes = 0
        self.sends = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        now = self._event_loop.time()
        if not self._kept and now - self._last_send >= IDLE_SECONDS:
            if self.transport.is_closing():
                return  # gone: aiormq's reader reports it; nothing can go out
            # The first write after a quiet spell goes out at once: nothing is queued behind
            # it to share its send, and an event of a quiet account must not wait.
            self._last_send = now
            self.sends += 1
            super().write(data)
            return
        self._kept.append(bytes(data))
        if len(self._kept) >= MAX_KEPT:
            self.flush()
        elif not self._flush_soon:
            self._flush_soon = True
            self._seen = self.writes
            self._quiet = 0
            self._event_loop.call_soon(self._turn)

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def _turn(self) -> None:
        # Writes keep coming while publishers queue for aiormq's channel lock (handed from
        # one to the next a loop turn apart, the writer task a turn later): wait while they
        # do, a few turns at most; QUIET_TURNS turns without one end the wait.
        if self.writes != self._seen:
            self._seen = self.writes
            self._quiet = 0
        else:
            self._quiet += 1
        if self._quiet < QUIET_TURNS and self._turns < MAX_TURNS:
            self._turns += 1
            self._event_loop.call_soon(self._turn)
            return
        self.flush()

    def flush(self) -> None:
        """Hand what is kept to the transport now."""
        self._flush_soon = False
        self._turns = 0
        if not self._kept:
            return
        data = self._kept[0] if len(self._kept) == 1 else b"".join(self._kept)
        self._kept.clear()
        if self.transport.is_closing():
            # The connection is gone: aiormq's reader reports it; these bytes cannot go out.
            return
        self.sends += 1
        self._last_send = self._event_loop.time()
        super().write(data)

    async def drain(self) -> None:
        # Flow control only, as asyncio's own: what is kept goes out within a few loop turns
        # anyway. Writing it now would give every ack (aio-pika waits for its drain) a
        # system call of its own again.
        await super().drain()

    def write_eof(self) -> None:
        self.flush()
        super().write_eof()

    def close(self) -> None:
        self.flush()
        super().close()


class CoalescingTransportFactory(TransportFactory):
    """aiormq's TCP and TLS transport factories, with a :class:`CoalescingWriter`."""

    def __init__(self) -> None:
        #: The writer of the latest connection made (tests read its counters).
        self.writer: CoalescingWriter | None = None

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        provider = kwargs.pop("ssl_context_provider", None)
        ssl = await provider.get_context() if url.scheme == "amqps" and provider else None
        if url.host is None or url.port is None:
            msg = f"broker URL without host or port: {url.with_password(None)}"
            raise AMQPConnectionError(msg)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=kwargs.pop("limit", READ_LIMIT), loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await loop.create_connection(
                lambda: protocol, host=url.host, port=url.port, ssl=ssl, **kwargs
            )
        except OSError as exc:
            # What aiormq's own factories raise, so its callers see the same error.
            raise AMQPConnectionError(*exc.args) from exc
        self.writer = CoalescingWriter(transport, protocol, reader, loop)
        return reader, self.writer
