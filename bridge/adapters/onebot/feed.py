"""EventFeed: one bot's queue of the account's events, passed on in order, acked once sent.

A named bot gets a durable queue ``<ns>.onebot.<account>.<name>`` bound to every event of the
account, bounded by ``x-max-length`` (oldest dropped first) and ``x-message-ttl``: while the bot
is away its events wait there, and it gets them when it comes back, once each (an event is acked
only after it was written to the bot's socket or its HTTP POST was answered 2xx). An unnamed bot
gets an exclusive queue that lives as long as its connection: live events only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.bus.base import Bus, Delivery, Subscription
from bridge.core.routing import Names

log = logging.getLogger(__name__)

#: Turns a delivery into the bytes a bot gets, or None when the bot gets nothing for it.
Render = Callable[[Delivery], bytes | None]
Send = Callable[[bytes], Awaitable[None]]
PREFETCH = 64


def bot_queue(names: Names, account: str, bot: str) -> str:
    """The durable queue of a named bot."""
    return f"{names.prefix}.onebot.{account}.{bot}"


def bot_queue_arguments(max_length: int, ttl_seconds: float, queue_type: str) -> dict[str, Any]:
    """Bounds of a bot's durable queue (and the queue type every project queue follows)."""
    args: dict[str, Any] = {
        "x-max-length": max_length,
        "x-overflow": "drop-head",
        "x-message-ttl": int(ttl_seconds * 1000),
    }
    if queue_type == "quorum":
        args["x-queue-type"] = "quorum"
    return args


class EventFeed:
    """Consumes one queue and hands each rendered event to ``send``, in order."""

    def __init__(
        self,
        bus: Bus,
        names: Names,
        account: str,
        render: Render,
        *,
        bot: str | None,
        arguments: dict[str, Any],
    ) -> None:
        self._bus = bus
        self._names = names
        self._account = account
        self._render = render
        self.bot = bot
        self._arguments = arguments
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._queue: str | None = None
        self._sub: Subscription | None = None
        self._writer: asyncio.Task[None] | None = None
        self.failed = asyncio.Event()

    async def declare(self) -> str:
        """Declare and bind the queue (once): from then on it collects the bot's events."""
        if self._queue is None:
            if self.bot is None:
                queue = await self._bus.declare_queue("", exclusive=True, auto_delete=True)
            else:
                queue = await self._bus.declare_queue(
                    bot_queue(self._names, self._account, self.bot), arguments=self._arguments
                )
            await self._bus.bind(queue, self._names.events, f"*.*.{self._account}")
            self._queue = queue
        return self._queue

    async def start(self, send: Send) -> None:
        """Declare the queue if needed, then start passing events on to ``send``."""
        queue = await self.declare()
        self._writer = asyncio.get_running_loop().create_task(self._write(send))
        self._sub = await self._bus.consume(queue, self._inbox_put, prefetch=PREFETCH)

    async def _inbox_put(self, d: Delivery) -> None:
        # One writer keeps the order; the consumer callback only queues.
        await self._inbox.put(d)

    async def _write(self, send: Send) -> None:
        while True:
            d = await self._inbox.get()
            try:
                data = self._render(d)
            except Exception:
                log.exception("event %s could not be rendered for OneBot; skipped", d.type)
                data = None
            if data is not None:
                try:
                    await send(data)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure ends this feed
                    # Not acked: it goes back to the queue when the subscription ends.
                    log.info("bot %s gone (%s); its events wait", self.bot or "(live)", exc)
                    self.failed.set()
                    return
            # Sent: a stop arriving now must not leave it unacked (it would come again).
            await asyncio.shield(d.ack())

    async def stop(self) -> None:
        """Stop; events taken but not sent go back to the queue (durable) or are dropped."""
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        if self._sub is not None:
            await self._sub.cancel()
            self._sub = None
