"""BrokerLease: the account's active role, held through RabbitMQ.

The queue ``<ns>.<account>.active`` (quorum when ``queue_type = "quorum"``, so it lives on a
majority of nodes) has a single active consumer and holds one token message. Every bridge of
the account consumes it with prefetch 1 and never acks: the consumer the broker made active
gets the token and holds it unacked, and that is the active role. When its process dies, its
connection drops or its node goes down, the broker takes the token back and delivers it to the
next consumer: that is the takeover. A clean stop cancels the consumer, which hands the token
over the same way.

Two tokens cannot make two active bridges: only the single active consumer receives anything,
and prefetch 1 keeps a second token in the queue. A second token can appear (two bridges
starting at once both see an empty queue); the bridge that becomes active purges the queue,
which removes ready messages only, never the token it holds.

The role is lost as soon as this bridge's connection (or the lease channel) closes: the broker
gives the token back on that event, so the bridge stops before anyone else can hold it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel

from bridge.bus.amqp import AmqpBus
from bridge.bus.base import OutMessage
from bridge.bus.topology import QueueType
from bridge.errors import PublishFailed

log = logging.getLogger(__name__)


def lease_arguments(queue_type: QueueType) -> dict[str, Any]:
    """Arguments of the lease queue."""
    args: dict[str, Any] = {"x-single-active-consumer": True}
    if queue_type == "quorum":
        args["x-queue-type"] = "quorum"
    return args


class BrokerLease:
    """The :class:`bridge.role.Role` held as the unacked token of a single-active-consumer queue."""

    def __init__(self, bus: AmqpBus, queue: str, queue_type: QueueType, *, me: str) -> None:
        self._bus = bus
        self.queue_name = queue
        self._args = lease_arguments(queue_type)
        self._me = me
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._held = asyncio.Event()
        self._lost = asyncio.Event()
        self._connected = asyncio.Event()
        self._connected.set()
        self._released = False

    async def join(self) -> None:
        """Declare the queue, put a token in if there is none, and consume it (once)."""
        if self._channel is not None:
            return
        self._released = False
        ch = await self._bus.connection.channel()
        await ch.set_qos(prefetch_count=1)
        q = await ch.declare_queue(self.queue_name, durable=True, arguments=self._args)
        self._channel, self._queue = ch, q
        ok = q.declaration_result
        if ok.message_count == 0 and ok.consumer_count == 0:
            # Nobody holds or offers a token: make one (a duplicate is harmless, see above).
            try:
                await self._bus.publish(
                    "",
                    self.queue_name,
                    OutMessage(body=b"token", type="openqq.active-token", app_id=self._me),
                    mandatory=True,
                )
            except PublishFailed as exc:
                log.warning("lease token for %s not published (%s)", self.queue_name, exc)
        self._bus.connection.close_callbacks.add(self._on_close)
        self._bus.connection.reconnect_callbacks.add(self._on_reconnect)
        ch.close_callbacks.add(self._on_close)
        self._tag = await q.consume(self._on_token, no_ack=False)

    def _on_reconnect(self, *_: object) -> None:
        self._connected.set()

    def _on_close(self, *_: object) -> None:
        self._connected.clear()
        if self._held.is_set():
            self._held.clear()
            self._lost.set()

    async def _on_token(self, msg: AbstractIncomingMessage) -> None:
        # Never acked: holding it unacked is the role. Duplicates waiting behind it go.
        if self._released:
            return
        self._lost.clear()
        self._held.set()
        if self._queue is not None:
            try:
                await self._queue.purge()
            except aio_pika.exceptions.AMQPError as exc:
                log.debug("purging extra lease tokens failed: %s", exc)

    async def acquire(self) -> None:
        await self._held.wait()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    async def wait_candidate(self) -> None:
        await self._connected.wait()

    def holds(self) -> bool:
        return self._held.is_set()

    async def standbys(self) -> int:
        """Other consumers of the lease queue (passive declare on a throwaway channel)."""
        try:
            ch = await self._bus.connection.channel()
            try:
                q = await ch.declare_queue(self.queue_name, passive=True)
                return max(0, (q.declaration_result.consumer_count or 0) - 1)
            finally:
                await ch.close()
        except (aio_pika.exceptions.AMQPError, *aio_pika.exceptions.CONNECTION_EXCEPTIONS):
            return 0

    async def release(self) -> None:
        """Cancel the consumer: the broker gives the token to the next bridge."""
        self._released = True
        self._held.clear()
        self._bus.connection.close_callbacks.discard(self._on_close)
        self._bus.connection.reconnect_callbacks.discard(self._on_reconnect)
        ch, self._channel = self._channel, None
        if ch is None or ch.is_closed:
            return
        ch.close_callbacks.discard(self._on_close)
        try:
            if self._queue is not None and self._tag is not None:
                await self._queue.cancel(self._tag)
            await ch.close()
        except (aio_pika.exceptions.AMQPError, *aio_pika.exceptions.CONNECTION_EXCEPTIONS) as exc:
            log.debug("lease release: %s (the broker takes the token back anyway)", exc)
