"""Send pacing and per-conversation ordering (stdlib asyncio only)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class Pacer:
    """Minimum intervals between sends: globally and per target. 0 switches one off.

    Each caller reserves the next free slot before it sleeps, so waiting callers keep
    their arrival order. A sleep can end late on a busy event loop, so the intervals are
    finally checked against the times sends really went out (``_went``): whatever the
    loop's delays, two returns of :meth:`wait` for one target, or any two returns with a
    global interval, are never closer than the interval.
    """

    def __init__(self, global_interval: float, per_target: float) -> None:
        self.global_interval = global_interval
        self.per_target = per_target
        self._next_global = 0.0
        self._next: dict[Hashable, float] = {}
        self._went_global = float("-inf")
        self._went: dict[Hashable, float] = {}

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
            # Forget targets whose interval has passed, so the maps stay small.
            self._next = {k: v for k, v in self._next.items() if v > now}
            self._went = {k: v for k, v in self._went.items() if v + self.per_target > now}
        while slot > now:
            await asyncio.sleep(slot - now)
            now = time.monotonic()
            # The previous send may have gone out late: keep the distance to when it went.
            slot = max(
                slot,
                self._went.get(target, float("-inf")) + self.per_target,
                self._went_global + self.global_interval,
            )
        # Checked and recorded with no await in between, so no other caller slips in.
        self._went[target] = now
        self._went_global = now
        if self.per_target > 0:
            self._next[target] = max(self._next[target], now + self.per_target)
        if self.global_interval > 0:
            self._next_global = max(self._next_global, now + self.global_interval)


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
