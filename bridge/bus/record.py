"""StreamRecord: the command record in a RabbitMQ stream, shared by the account's bridges.

``<ns>.<account>.record`` is a stream (``x-queue-type: stream``): an append-only log,
replicated on every node of the cluster like a quorum queue (Raft-style, a write is confirmed
once a majority has it), kept ``idempotency_hours`` (``x-max-age``). Each entry is one message:
``type`` ``started`` or ``done`` (the reply as body), ``message_id`` the command's. Writes are
confirmed publishes: :meth:`started` returns only once the broker confirmed, and the executor
hands nothing to QQ before that; :meth:`finish` returns once the outcome is confirmed, and the
command server acks only after that.

:meth:`load` reads the stream from its first entry to its end before the bridge consumes any
command. The end is found with a marker: the reader appends a ``marker`` entry with a fresh id
(confirmed), then reads until it sees it; everything confirmed before is before it. While
active, the bridge is the only writer, so its memory of the log stays complete.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from bridge.bus.amqp import AmqpBus
from bridge.bus.base import OutMessage
from bridge.errors import BrokerUnavailable, PublishFailed
from bridge.store import Seen

log = logging.getLogger(__name__)

#: Entries read ahead while catching up (stream consumers need a prefetch).
READ_AHEAD = 2000
#: Segment size: retention by age drops whole segments, so keep them small.
SEGMENT_BYTES = 8_000_000


def record_arguments(hours: float) -> dict[str, Any]:
    """Arguments of the record stream."""
    return {
        "x-queue-type": "stream",
        "x-max-age": f"{max(1, round(hours * 3600))}s",
        "x-stream-max-segment-size-bytes": SEGMENT_BYTES,
    }


class StreamRecord:
    """The :class:`bridge.store.CommandRecord` in a RabbitMQ stream."""

    def __init__(
        self,
        bus: AmqpBus,
        stream: str,
        *,
        hours: float,
        write_timeout: float = 10.0,
        finish_timeout: float = 60.0,
        load_timeout: float = 60.0,
    ) -> None:
        self._bus = bus
        self.stream = stream
        self._hours = hours
        self._write_timeout = write_timeout
        self._finish_timeout = finish_timeout
        self._load_timeout = load_timeout
        # message_id -> (when, reply or None for started)
        self._entries: dict[str, tuple[float, bytes | None]] = {}
        self.loaded = 0
        self._writes = 0

    async def declare(self) -> None:
        """Declare the stream (idempotent)."""
        await self._bus.declare_queue(self.stream, arguments=record_arguments(self._hours))

    async def load(self) -> None:
        """Read every entry up to the end of the stream (a marker appended now)."""
        await self.declare()
        marker = f"marker-{uuid.uuid4().hex}"
        # Right after a node died the stream may be electing a leader: wait as long as a load.
        await self._append("marker", marker, b"", self._load_timeout)
        seen_marker = asyncio.get_running_loop().create_future()
        entries: dict[str, tuple[float, bytes | None]] = {}
        count = 0

        async def on_entry(msg: AbstractIncomingMessage) -> None:
            nonlocal count
            count += 1
            kind, mid = msg.type, msg.message_id
            if kind == "marker" and mid == marker and not seen_marker.done():
                seen_marker.set_result(None)
            elif mid and kind == "started":
                entries.setdefault(mid, (_when(msg), None))
            elif mid and kind == "done":
                entries[mid] = (_when(msg), msg.body)
            await msg.ack()

        ch = await self._bus.connection.channel()
        try:
            await ch.set_qos(prefetch_count=READ_AHEAD)
            q = await ch.declare_queue(self.stream, passive=True)
            tag = await q.consume(on_entry, arguments={"x-stream-offset": "first"})
            try:
                async with asyncio.timeout(self._load_timeout):
                    await seen_marker
            except TimeoutError:
                msg = (
                    f"command record {self.stream}: did not reach its end within"
                    f" {self._load_timeout:g}s ({count} entries read)"
                )
                raise BrokerUnavailable(msg) from None
            await q.cancel(tag)
        finally:
            if not ch.is_closed:
                await ch.close()
        horizon = time.time() - self._hours * 3600
        self._entries = {k: v for k, v in entries.items() if v[0] >= horizon}
        self.loaded = count
        log.info(
            "command record %s read to its end: %d entries, %d commands",
            self.stream,
            count,
            len(self._entries),
        )

    def lookup(self, message_id: str) -> Seen:
        got = self._entries.get(message_id)
        if got is None:
            return Seen("new")
        if got[1] is None:
            return Seen("started")
        return Seen("done", got[1])

    async def started(self, message_id: str) -> None:
        await self._append("started", message_id, b"", self._write_timeout)
        self._entries.setdefault(message_id, (time.time(), None))
        self._tick()

    async def finish(self, message_id: str, reply: bytes) -> None:
        await self._append("done", message_id, reply, self._finish_timeout)
        self._entries[message_id] = (time.time(), reply)
        self._tick()

    def _tick(self) -> None:
        # Forget what the stream itself drops (x-max-age), so memory follows the retention.
        self._writes += 1
        if self._writes % 1000 == 0:
            horizon = time.time() - self._hours * 3600
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= horizon}

    async def _append(self, kind: str, message_id: str, body: bytes, seconds: float) -> None:
        """Publish one entry until the broker confirms it; PublishFailed after ``seconds``."""
        msg = OutMessage(
            body=body,
            message_id=message_id,
            type=kind,
            timestamp=datetime.now(UTC),
            content_type="application/octet-stream",
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        delay = 0.05
        while True:
            try:
                if await self._bus.publish("", self.stream, msg, mandatory=True):
                    return
                reason = "returned unroutable (the stream is missing)"
            except PublishFailed as exc:
                reason = str(exc)
            if loop.time() + delay > deadline:
                text = (
                    f"command record {self.stream}: {kind} of {message_id} not confirmed: {reason}"
                )
                raise PublishFailed(text)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def close(self) -> None:
        """Nothing held between calls."""


def _when(msg: AbstractIncomingMessage) -> float:
    ts = msg.timestamp
    return ts.timestamp() if ts is not None else time.time()
