"""The check_event buffer (reference/openqq-spec.md §5), without the original's losses.

Items are the legacy JSON bytes of messages and recorded events, oldest first, at most
``size`` of them (the oldest is dropped, and counted, when full). A poll takes everything
waiting; with nothing waiting it waits up to ``timeout`` for the next item, which goes to the
longest-waiting poller that is still connected: concurrent pollers each get a real item or
keep waiting (never ``[null]``), and a poller that hung up does not swallow an item.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class EventBuffer:
    """Bounded buffer plus a FIFO of waiting pollers."""

    def __init__(self, size: int = 20) -> None:
        self.size = size
        self._items: deque[bytes] = deque()
        self._waiters: deque[tuple[asyncio.Future[bytes], Callable[[], bool]]] = deque()
        self.dropped = 0

    def waiting(self) -> int:
        """Pollers waiting now."""
        return len(self._waiters)

    def __len__(self) -> int:
        return len(self._items)

    def append(self, item: bytes) -> None:
        """Hand the item to the first live poller, or keep it (dropping the oldest if full)."""
        while self._waiters:
            fut, alive = self._waiters.popleft()
            if fut.done():
                continue
            if not alive():
                fut.cancel()
                continue
            fut.set_result(item)
            return
        if len(self._items) >= self.size:
            self._items.popleft()
            self.dropped += 1
            log.debug("check_event buffer full (%d): oldest item dropped", self.size)
        self._items.append(item)

    async def poll(self, timeout: float, alive: Callable[[], bool] = lambda: True) -> list[bytes]:  # noqa: ASYNC109
        """Everything waiting; else the next item within ``timeout``; else nothing."""
        if self._items:
            items = list(self._items)
            self._items.clear()
            return items
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        entry = (fut, alive)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return [await fut]
        except TimeoutError:
            return []
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
            if fut.done() and not fut.cancelled() and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                # Cancelled right after the item was handed over: keep it for the next poll.
                self._items.appendleft(fut.result())
