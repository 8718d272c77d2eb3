"""Outbox: the bounded buffer of upstream events and the loop that publishes it with confirms.

Events are published in the order they are put, many at a time, each awaiting its own confirm
(the channel keeps the order per conversation). An event put while nothing waits ahead of it
and the window has room starts publishing at once, without a hand-over through the buffer
to the publishing loop (one event-loop turn and a task switch less on the path of a quiet
account's event); otherwise it waits its turn in the buffer. A full buffer makes the upstream
wait up to ``buffer_wait``, then refuses the event loudly (BufferFull). The outbox publishes
only while its bridge is the account's active one: :meth:`hold` stops publishing (a bridge
that lost its role publishes nothing), :meth:`release` resumes, :meth:`discard` drops what
waits (a bridge that will not be active again).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time

from bridge.bus.publisher import EventPublisher
from bridge.core import events as ev
from bridge.errors import BufferFull
from bridge.metrics import OFF, Metrics

log = logging.getLogger(__name__)

#: Events published at once, awaiting their confirms.
PUBLISH_WINDOW = 256

_Item = tuple[ev.Event, str, asyncio.Future[None] | None]


class Outbox:
    """Buffer and publish one account's events; ``run()`` is the publishing loop."""

    def __init__(
        self,
        publisher: EventPublisher,
        *,
        size: int,
        wait: float,
        metrics: Metrics = OFF,
        account: str = "",
    ) -> None:
        self.publisher = publisher
        self._metrics = metrics
        self._account = account
        self._latency = metrics.publish_seconds.labels(account)
        metrics.probe("openqq_event_buffer_depth", (account,), self.depth)
        self._buffer: asyncio.Queue[_Item] = asyncio.Queue(size)
        self._wait = wait
        self._publishing: set[asyncio.Task[None]] = set()
        #: Events put in the buffer (or waiting for room in it) and not started yet: while
        #: there are any, a new event queues behind them (order).
        self._queued = 0
        #: Events put and not yet confirmed (or discarded): what drain() waits for.
        self._unconfirmed = 0
        self._all_confirmed = asyncio.Event()
        self._all_confirmed.set()
        #: Free places in the window of publishes awaiting their confirms.
        self._free = PUBLISH_WINDOW
        self._room = asyncio.Event()
        self._room.set()
        self._running = False
        self.full_logged = False
        # message_id of events: unique per process run, cheap, and kept on re-publish.
        self._id_prefix = os.urandom(12).hex() + "-"
        self._ids = itertools.count(1)
        self._open = asyncio.Event()
        self._open.set()
        self.discarded = 0

    def depth(self) -> int:
        """Events buffered now."""
        return self._buffer.qsize()

    def new_id(self) -> str:
        """A fresh event message_id."""
        return f"{self._id_prefix}{next(self._ids):x}"

    async def put(self, event: ev.Event, done: asyncio.Future[None] | None = None) -> str:
        """Buffer an event (BufferFull if no room frees up within ``wait``); its message_id."""
        mid = self.new_id()
        if self._queued == 0 and self._free > 0 and self._running and self._open.is_set():
            # Nothing ahead of it: publishing now keeps the order and skips the hand-over.
            self._unconfirmed += 1
            self._all_confirmed.clear()
            self._start(event, mid, done)
            return mid
        item: _Item = (event, mid, done)
        self._queued += 1
        self._unconfirmed += 1
        self._all_confirmed.clear()
        try:
            self._buffer.put_nowait(item)
        except asyncio.QueueFull:
            try:
                await self._put_waiting(item)
            except BaseException:
                self._queued -= 1
                self._settled()
                raise
        return mid

    async def _put_waiting(self, item: _Item) -> None:
        if not self.full_logged:
            # Once per episode: under load a full buffer is ordinary back-pressure.
            self.full_logged = True
            log.warning(
                "event buffer full (%d events): the upstream waits for the broker",
                self._buffer.maxsize,
            )
        try:
            async with asyncio.timeout(self._wait):
                await self._buffer.put(item)
        except TimeoutError:
            kind = item[0].KIND
            msg = (
                f"event buffer full ({self._buffer.maxsize} events) for"
                f" {self._wait:g}s: is the broker reachable? {kind} refused"
            )
            log.error(msg)
            self._metrics.event_children(self._account, kind)[2].inc()
            raise BufferFull(msg) from None

    def _settled(self) -> None:
        """One event put is confirmed, refused or dropped."""
        self._unconfirmed -= 1
        if self._unconfirmed == 0:
            self._all_confirmed.set()

    def hold(self) -> None:
        """Publish nothing more from the buffer (publishes already sent finish or fail)."""
        self._open.clear()

    def release(self) -> None:
        """Publish again."""
        self._open.set()

    def discard(self) -> int:
        """Drop every buffered event (this bridge will not publish them); how many."""
        n = 0
        while True:
            try:
                _, _, done = self._buffer.get_nowait()
            except asyncio.QueueEmpty:
                break
            self._queued -= 1
            self._settled()
            if done is not None and not done.done():
                done.cancel()
            n += 1
        self.discarded += n
        return n

    async def run(self) -> None:
        """Publish the buffer in order until cancelled."""
        self._running = True
        try:
            while True:
                await self._open.wait()
                event, mid, done = await self._buffer.get()
                if not self._open.is_set():
                    # Taken while the gate closed: it goes out first once publishing resumes.
                    await self._open.wait()
                while self._free == 0:
                    await self._room.wait()
                self._queued -= 1
                self._start(event, mid, done)
        finally:
            self._running = False

    def _start(self, event: ev.Event, mid: str, done: asyncio.Future[None] | None) -> None:
        """Publish in a task of its own, taking a place in the window."""
        self._free -= 1
        if self._free == 0:
            self._room.clear()
        task = asyncio.get_running_loop().create_task(self._publish_one(event, mid, done))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish_one(
        self, event: ev.Event, mid: str, done: asyncio.Future[None] | None
    ) -> None:
        published, confirmed, refused = self._metrics.event_children(self._account, event.KIND)
        published.inc()
        start = time.perf_counter()
        try:
            await self.publisher.publish(event, mid)
        except Exception:
            refused.inc()
            raise
        else:
            confirmed.inc()
            self._latency.observe(time.perf_counter() - start)
        finally:
            self._free += 1
            self._room.set()
            self._settled()
            if self.full_logged and self._buffer.qsize() < self._buffer.maxsize // 2:
                self.full_logged = False
                log.warning("event buffer has room again (%d waiting)", self._buffer.qsize())
        if done is not None and not done.done():
            done.set_result(None)

    async def drain(self, seconds: float) -> bool:
        """Wait until every buffered event is confirmed; False (logged) on timeout."""
        try:
            async with asyncio.timeout(seconds):
                await self._all_confirmed.wait()
        except TimeoutError:
            log.error("%d event(s) not confirmed by the broker at shutdown", self._unconfirmed)
            return False
        return True

    async def close(self) -> None:
        """Cancel the publishes still in flight."""
        tasks = list(self._publishing)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
