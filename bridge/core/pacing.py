"""Send pacing and per-conversation ordering (stdlib asyncio only)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class Pacer:
    """Minimum intervals between sends: globally and per target. 0 switches one off.

    Each caller reserves the next free slot before it sleeps, so waiting callers keep
    their arrival order and the intervals hold under any concurrency.
    """

    def __init__(self, global_interval: float, per_target: float) -> None:
        self.global_interval = global_interval
        self.per_target = per_target
        self._next_global = 0.0
        self._next: dict[Hashable, float] = {}

    async def wait(self, target: Hashable) -> None:
        """Sleep until ``target`` may be sent to."""
        if self.global_interval <= 0 and self.per_target <= 0:
            return
        now = time.monotonic()
        slot = max(now, self._next.get(target, 0.0))
        if self.global_interval > 0:
            # Global slots are handed out in call order: a later call never overtakes.
            slot = max(slot, self._next_global)
            self._next_global = slot + self.global_interval
        self._next[target] = slot + self.per_target
        if len(self._next) > 10_000:
            # Forget targets whose interval has passed, so the map stays small.
            self._next = {k: v for k, v in self._next.items() if v > now}
        if slot > now:
            await asyncio.sleep(slot - now)


class KeyedLocks:
    """One FIFO lock per key: work on one conversation runs in arrival order."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Run the block alone for ``key``, after every earlier holder of ``key``."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
