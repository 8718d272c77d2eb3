"""PresenceAnnouncer: publishes a bridge's Presence (bridge.core.presence) on the bus.

At start, on every state change (``changed()``), every ``interval`` seconds, and once more
when stopped. A standby bridge (one that does not hold its account's active role) is silent:
``snapshot`` returns None for it, and the last presence (state ``stop``) goes out only from a
bridge whose previous presence did, so a standby never speaks for the account.

Presence is a sign of life, not data: it is published non-persistent, with a per-message TTL
of three intervals, not mandatory, and a failed publish is logged at DEBUG and tried again at
the next tick: the bridge never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from bridge.bus.base import Bus, OutMessage
from bridge.core.codec import encode
from bridge.core.presence import PRESENCE_INTERVAL, PRESENCE_KIND, PRESENCE_MISSES, Presence
from bridge.core.routing import Names, event_key
from bridge.errors import PublishFailed

log = logging.getLogger(__name__)


class PresenceAnnouncer:
    """Announces one bridge; ``snapshot`` returns its current Presence (None: stay silent)."""

    def __init__(
        self,
        bus: Bus,
        names: Names,
        snapshot: Callable[[], Presence | None],
        *,
        interval: float = PRESENCE_INTERVAL,
    ) -> None:
        self._bus = bus
        self._names = names
        self._snapshot = snapshot
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Whether the last snapshot was a presence (this bridge speaks for the account).
        self._speaking = False

    def start(self) -> None:
        """Start announcing (the first presence goes out at once)."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def changed(self) -> None:
        """Announce now (the state changed)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop and announce the last presence (state ``stop`` by then)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            if self._speaking:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        await self.announce()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            await self.announce()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()

    async def announce(self) -> None:
        """Publish the current presence once (failures logged, never raised)."""
        p = self._snapshot()
        self._speaking = p is not None
        if p is None:
            return
        msg = OutMessage(
            body=encode(p),
            message_id=uuid.uuid4().hex,
            type=PRESENCE_KIND,
            headers={"account": p.account},
            expiration_ms=int(self.interval * PRESENCE_MISSES * 1000),
            timestamp=datetime.now(UTC),
            persistent=False,
        )
        try:
            await self._bus.publish(
                self._names.events, event_key(PRESENCE_KIND, p.account), msg, mandatory=False
            )
        except (PublishFailed, ConnectionError) as exc:
            log.debug("presence of %s not published: %s", p.account, exc)
