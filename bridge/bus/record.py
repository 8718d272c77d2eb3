"""StreamRecord: the command record in a RabbitMQ stream, shared by the account's bridges.

``<ns>.<account>.record`` is a stream (``x-queue-type: stream``): an append-only log,
replicated on every node of the cluster like a quorum queue (Raft-style, a write is confirmed
once a majority has it), kept ``idempotency_hours`` (``x-max-age``). Writes are confirmed
publishes: :meth:`started` returns only once the broker confirmed, and the executor hands
nothing to QQ before that; :meth:`finish` returns once the outcome is confirmed, and the
command server acks only after that.

Writes are committed in groups: the entries asked for while the previous writes are on their
way to the broker go out together in one message, and each caller still returns only once the
message holding its entry is confirmed. An entry alone is one message of ``type`` ``started``
or ``done`` (the reply as body) with the command's ``message_id``; several are one message of
``type`` ``batch`` whose body is a msgpack array of ``[kind, message_id, reply or nil]``. One
message is confirmed whole or not at all, so a group is never half written. A stream publish
costs the broker and the client the same whether it holds one entry or fifty: grouping is what
keeps the record from costing more than the command it protects (BENCHMARKS.md, sends).

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
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
#: Group messages on their way to the broker at once; entries asked for meanwhile wait and
#: go out together in the next one.
WRITES_IN_FLIGHT = 2
#: Entries in one message at most (a reply is small; a read's answer is never recorded).
GROUP_MAX = 256

Kind = Literal["started", "done"]
#: The body of a ``batch`` message: ``[kind, message_id, reply or nil]`` per entry.
_Group = list[tuple[Kind, str, bytes | None]]
_group_encoder = msgspec.msgpack.Encoder()
_group_decoder = msgspec.msgpack.Decoder(_Group)


@dataclass(eq=False, slots=True)
class _Entry:
    """One entry waiting to be written, and its caller's wait."""

    kind: Kind | Literal["marker"]
    message_id: str
    reply: bytes | None
    deadline: float
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


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
        # Group commit: entries not sent yet, group messages on their way, the writer tasks.
        self._waiting: list[_Entry] = []
        self._in_flight = 0
        self._flush_soon = False
        self._writers: set[asyncio.Task[None]] = set()
        self._closed = False
        #: Group messages written, and entries in them (the benchmark reports the ratio).
        self.messages_written = 0
        self.entries_written = 0

    async def declare(self) -> None:
        """Declare the stream (idempotent)."""
        await self._bus.declare_queue(self.stream, arguments=record_arguments(self._hours))

    async def load(self) -> None:
        """Read every entry up to the end of the stream (a marker appended now)."""
        await self.declare()
        marker = f"marker-{uuid.uuid4().hex}"
        # Right after a node died the stream may be electing a leader: wait as long as a load.
        # A message of its own, never grouped: the reader looks for its type and id.
        end = _Entry("marker", marker, None, asyncio.get_running_loop().time() + self._load_timeout)
        await self._send([end])
        await end.done
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
            elif kind == "batch":
                _apply_group(entries, msg, self.stream)
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
        await self._write("started", message_id, None, self._write_timeout)
        self._entries.setdefault(message_id, (time.time(), None))
        self._tick()

    async def finish(self, message_id: str, reply: bytes) -> None:
        await self._write("done", message_id, reply, self._finish_timeout)
        self._entries[message_id] = (time.time(), reply)
        self._tick()

    def _tick(self) -> None:
        # Forget what the stream itself drops (x-max-age), so memory follows the retention.
        self._writes += 1
        if self._writes % 1000 == 0:
            horizon = time.time() - self._hours * 3600
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= horizon}

    async def _write(
        self, kind: Kind, message_id: str, reply: bytes | None, seconds: float
    ) -> None:
        """Queue one entry for the next group message; return once that one is confirmed.

        PublishFailed when it is not confirmed within ``seconds``: still waiting for its turn
        then (the writes ahead of it wait for the broker), it is withdrawn and never written.
        """
        if self._closed:
            raise PublishFailed(f"command record {self.stream}: closed")
        entry = _Entry(kind, message_id, reply, asyncio.get_running_loop().time() + seconds)
        self._waiting.append(entry)
        self._schedule()
        try:
            finished, _ = await asyncio.wait({entry.done}, timeout=seconds)
            if not finished and entry in self._waiting:
                self._waiting.remove(entry)
                text = (
                    f"command record {self.stream}: {kind} of {message_id} not written within"
                    f" {seconds:g}s: the writes ahead of it are still waiting for the broker"
                )
                raise PublishFailed(text)
            # On its way: its writer ends it by its deadline (or the publish's own timeout).
            await entry.done
        except asyncio.CancelledError:
            # Not sent yet: never written (a group that holds it leaves it out). Already sent:
            # it may be, as with any publish.
            if entry in self._waiting:
                self._waiting.remove(entry)
            entry.done.cancel()
            raise

    def _schedule(self) -> None:
        if self._closed:
            return
        if self._in_flight == 0:
            # Nothing on its way: waiting would only add a loop turn to this entry.
            self._flush()
        elif not self._flush_soon and self._in_flight < WRITES_IN_FLIGHT:
            # One loop turn later, so the entries asked for in this turn go out together.
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        while self._waiting and self._in_flight < WRITES_IN_FLIGHT:
            group, self._waiting = self._waiting[:GROUP_MAX], self._waiting[GROUP_MAX:]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._writer(group))
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)

    async def _writer(self, group: list[_Entry]) -> None:
        try:
            if await self._send(group):
                self.messages_written += 1
                self.entries_written += len(group)
        finally:
            self._in_flight -= 1
            if self._waiting:
                self._schedule()

    async def _send(self, group: list[_Entry]) -> bool:
        """Publish a group until the broker confirms it (True); each entry fails at its own
        deadline (False once all have)."""
        loop = asyncio.get_running_loop()
        delay = 0.05
        try:
            while group := [e for e in group if not e.done.done()]:
                try:
                    routed = await self._bus.publish(
                        "", self.stream, _message(group), mandatory=True
                    )
                    reason = "returned unroutable (the stream is missing)"
                except PublishFailed as exc:
                    routed, reason = False, str(exc)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise
                    # Not this task's cancellation: aiormq cancels the confirms it still
                    # waits for when its connection dies. Try again, as for a lost publish.
                    routed, reason = False, "its confirm was cancelled (the connection was lost)"
                if routed:
                    for e in group:
                        if not e.done.done():
                            e.done.set_result(None)
                    return True
                for e in group:
                    if loop.time() + delay > e.deadline and not e.done.done():
                        text = (
                            f"command record {self.stream}: {e.kind} of {e.message_id}"
                            f" not confirmed: {reason}"
                        )
                        e.done.set_exception(PublishFailed(text))
                if all(e.done.done() for e in group):
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            return False
        except asyncio.CancelledError:
            for e in group:
                if not e.done.done():
                    e.done.set_exception(PublishFailed(f"command record {self.stream}: closed"))
            raise

    async def close(self, grace: float = 10.0) -> None:
        """Write nothing more; let the group messages on their way be confirmed (bounded)."""
        self._closed = True
        for e in self._waiting:
            if not e.done.done():
                e.done.set_exception(PublishFailed(f"command record {self.stream}: closed"))
        self._waiting.clear()
        if self._writers:
            _, pending = await asyncio.wait(list(self._writers), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)


def _when(msg: AbstractIncomingMessage) -> float:
    ts = msg.timestamp
    return ts.timestamp() if ts is not None else time.time()


def _message(group: list[_Entry]) -> OutMessage:
    """One entry as its own ``started``/``done`` message, several as one ``batch``."""
    kind: str
    if len(group) == 1:
        e = group[0]
        kind, message_id, body = e.kind, e.message_id, e.reply or b""
    else:
        kind, message_id = "batch", None
        body = _group_encoder.encode([(e.kind, e.message_id, e.reply) for e in group])
    return OutMessage(
        body=body,
        message_id=message_id,
        type=kind,
        timestamp=datetime.now(UTC),
        content_type="application/octet-stream",
    )


def _apply_group(
    entries: dict[str, tuple[float, bytes | None]], msg: AbstractIncomingMessage, stream: str
) -> None:
    """Read a ``batch`` message into ``entries``; an unreadable one is logged and skipped."""
    try:
        group = _group_decoder.decode(msg.body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("command record %s: unreadable batch entry skipped: %s", stream, exc)
        return
    when = _when(msg)
    for kind, mid, reply in group:
        if kind == "started":
            entries.setdefault(mid, (when, None))
        else:
            entries[mid] = (when, reply or b"")
