"""The embedded in-memory bus: a small AMQP-like broker inside the process.

It keeps RabbitMQ's semantics for what the bridge uses (topic routing, the default exchange
routing by queue name, mandatory returns, prefetch, manual acks, requeue with ``redelivered``,
dead-letter exchanges with ``x-death``, per-message expiration), so the quick start behaves
like a real deployment. Nothing survives the process; use RabbitMQ for durability.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bridge.bus.base import Delivery, Handler, Headers, OutMessage, Subscription
from bridge.core.routing import topic_matches
from bridge.errors import PublishFailed

log = logging.getLogger(__name__)
_names = itertools.count(1)


@dataclass(slots=True)
class _Stored:
    exchange: str
    routing_key: str
    message: OutMessage
    enqueued: float
    redelivered: bool = False


@dataclass(eq=False, slots=True)
class _MemDelivery:
    queue: _Queue
    stored: _Stored
    consumer: _Consumer
    body: bytes
    exchange: str
    routing_key: str
    message_id: str | None
    correlation_id: str | None
    reply_to: str | None
    type: str | None
    headers: Headers
    redelivered: bool
    timestamp: datetime | None
    expiration_ms: int | None
    app_id: str | None
    content_type: str | None
    settled: bool = False

    async def ack(self) -> None:
        if self.consumer.auto_ack:
            return
        self._settle()

    async def reject(self, *, requeue: bool) -> None:
        if self.consumer.auto_ack:
            return
        self._settle()
        if requeue:
            self.stored.redelivered = True
            self.queue.messages.appendleft(self.stored)
        else:
            self.queue.dead_letter(self.stored, "rejected")
        self.queue.dispatch()

    def _settle(self) -> None:
        if self.settled:
            msg = "delivery already acknowledged"
            raise RuntimeError(msg)
        self.settled = True
        self.consumer.unacked.discard(self)
        self.queue.dispatch()


@dataclass(eq=False, slots=True)
class _Consumer:
    queue: _Queue
    handler: Handler
    prefetch: int
    auto_ack: bool = False
    unacked: set[_MemDelivery] = field(default_factory=set)
    active: bool = True

    async def cancel(self) -> None:
        if not self.active:
            return
        self.active = False
        self.queue.consumers.remove(self)
        # Like RabbitMQ: what the consumer never settled goes back, marked redelivered.
        for d in sorted(self.unacked, key=lambda d: -d.stored.enqueued):
            d.settled = True
            d.stored.redelivered = True
            self.queue.messages.appendleft(d.stored)
        self.unacked.clear()
        self.queue.dispatch()


@dataclass(eq=False, slots=True)
class _Queue:
    broker: MemoryBroker
    name: str
    arguments: Mapping[str, Any]
    exclusive: bool
    messages: deque[_Stored] = field(default_factory=deque)
    consumers: list[_Consumer] = field(default_factory=list)
    _turn: int = 0

    def dead_letter(self, stored: _Stored, reason: str) -> None:
        dlx = self.arguments.get("x-dead-letter-exchange")
        if dlx is None:
            log.debug(
                "message dropped from %s (%s): no dead-letter exchange",
                self.name,
                reason,
            )
            return
        key = self.arguments.get("x-dead-letter-routing-key", stored.routing_key)
        headers = {
            **stored.message.headers,
            "x-first-death-reason": stored.message.headers.get("x-first-death-reason", reason),
            "x-first-death-queue": stored.message.headers.get("x-first-death-queue", self.name),
            "x-death-reason": reason,
        }
        msg = replace(stored.message, headers=headers, expiration_ms=None)
        self.broker.route(str(dlx), str(key), msg)

    def _expired(self, stored: _Stored, now: float) -> bool:
        exp = stored.message.expiration_ms
        return exp is not None and (now - stored.enqueued) * 1000 >= exp

    def dispatch(self) -> None:
        now = time.monotonic()
        while self.messages and self.consumers:
            head = self.messages[0]
            if self._expired(head, now):
                self.messages.popleft()
                self.dead_letter(head, "expired")
                continue
            consumer = self._next_consumer()
            if consumer is None:
                return
            self.messages.popleft()
            self.broker.deliver(self, consumer, head)

    def _next_consumer(self) -> _Consumer | None:
        n = len(self.consumers)
        for i in range(n):
            c = self.consumers[(self._turn + i) % n]
            if c.prefetch <= 0 or len(c.unacked) < c.prefetch:
                self._turn = (self._turn + i + 1) % n
                return c
        return None


class MemoryBroker:
    """Exchanges, queues and bindings of one process."""

    def __init__(self) -> None:
        self.exchanges: dict[str, list[tuple[str, str]]] = {}
        self.queues: dict[str, _Queue] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def route(self, exchange: str, routing_key: str, message: OutMessage) -> bool:
        if exchange == "":
            targets = [routing_key] if routing_key in self.queues else []
        else:
            if exchange not in self.exchanges:
                msg = f"no exchange {exchange!r}"
                raise PublishFailed(msg)
            targets = list(
                dict.fromkeys(
                    q
                    for pattern, q in self.exchanges[exchange]
                    if topic_matches(pattern, routing_key)
                )
            )
        now = time.monotonic()
        for name in targets:
            q = self.queues[name]
            q.messages.append(_Stored(exchange, routing_key, message, now))
            q.dispatch()
        return bool(targets)

    def deliver(self, queue: _Queue, consumer: _Consumer, stored: _Stored) -> None:
        m = stored.message
        d = _MemDelivery(
            queue=queue,
            stored=stored,
            consumer=consumer,
            body=m.body,
            exchange=stored.exchange,
            routing_key=stored.routing_key,
            message_id=m.message_id,
            correlation_id=m.correlation_id,
            reply_to=m.reply_to,
            type=m.type,
            headers=dict(m.headers),
            redelivered=stored.redelivered,
            timestamp=m.timestamp,
            expiration_ms=m.expiration_ms,
            app_id=m.app_id,
            content_type=m.content_type,
        )
        if consumer.auto_ack:
            d.settled = True
        else:
            consumer.unacked.add(d)
        task = asyncio.get_running_loop().create_task(self._run(consumer, d))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _run(consumer: _Consumer, d: _MemDelivery) -> None:
        try:
            await consumer.handler(d)
        except Exception:
            log.exception("consumer of %s failed; message requeued", consumer.queue.name)
            if not d.settled and not consumer.auto_ack:
                await d.reject(requeue=True)


class MemoryBus:
    """The :class:`bridge.bus.base.Bus` over a :class:`MemoryBroker` (shared per process)."""

    #: In-process: no limit.
    max_message_bytes: int | None = None

    def __init__(self, broker: MemoryBroker | None = None) -> None:
        self.broker = broker or MemoryBroker()
        self._subs: list[_Consumer] = []
        self._own_queues: list[str] = []

    async def declare_exchange(self, name: str, *, auto_delete: bool = False) -> None:
        self.broker.exchanges.setdefault(name, [])

    async def declare_queue(
        self,
        name: str = "",
        *,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        if not name:
            name = f"amq.gen-mem-{next(_names)}"
        existing = self.broker.queues.get(name)
        args = dict(arguments or {})
        if existing is not None:
            if existing.arguments != args:
                msg = f"queue {name!r} exists with arguments {existing.arguments!r}"
                raise PublishFailed(msg)
            return name
        self.broker.queues[name] = _Queue(self.broker, name, args, exclusive)
        if exclusive or auto_delete:
            self._own_queues.append(name)
        return name

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        bindings = self.broker.exchanges[exchange]
        if (routing_key, queue) not in bindings:
            bindings.append((routing_key, queue))

    async def unbind(self, queue: str, exchange: str, routing_key: str) -> None:
        bindings = self.broker.exchanges.get(exchange, [])
        if (routing_key, queue) in bindings:
            bindings.remove((routing_key, queue))

    async def publish(
        self, exchange: str, routing_key: str, message: OutMessage, *, mandatory: bool
    ) -> bool:
        routed = self.broker.route(exchange, routing_key, message)
        # Yield like a network round trip would, so producers cannot starve consumers.
        await asyncio.sleep(0)
        return routed or not mandatory

    async def consume(
        self, queue: str, handler: Handler, *, prefetch: int, auto_ack: bool = False
    ) -> Subscription:
        q = self.broker.queues[queue]
        c = _Consumer(q, handler, 0 if auto_ack else prefetch, auto_ack)
        q.consumers.append(c)
        self._subs.append(c)
        q.dispatch()
        return c

    async def delete_queue(self, name: str) -> None:
        q = self.broker.queues.pop(name, None)
        if q is None:
            return
        for c in list(q.consumers):
            c.active = False
        for bindings in self.broker.exchanges.values():
            bindings[:] = [(p, n) for p, n in bindings if n != name]

    async def delete_exchange(self, name: str) -> None:
        self.broker.exchanges.pop(name, None)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Never called: the in-memory bus has no connection to lose."""

    async def close(self) -> None:
        for c in self._subs:
            await c.cancel()
        self._subs.clear()
        for name in self._own_queues:
            await self.delete_queue(name)
        self._own_queues.clear()


def _conforms(d: _MemDelivery) -> Delivery:
    # Lets mypy check that the in-memory delivery satisfies the Delivery protocol.
    return d
