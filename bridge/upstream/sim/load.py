"""The load generator of ``POST /sim/load``: group messages at a rate, counted as they go.

A message the bridge refuses (its buffer is full) is counted and logged, as a real account's
message would be, and the generator goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bridge.core import events as ev
from bridge.core.model import Group
from bridge.core.ports import Emit
from bridge.errors import BufferFull
from bridge.upstream.sim import inject as inj

log = logging.getLogger(__name__)


class Load:
    """At most one generator at a time; ``sent`` and ``refused`` count its messages."""

    def __init__(self, build: Callable[[inj.Inject], ev.Event], emit: Emit) -> None:
        self._build = build
        self._emit = emit
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.refused = 0

    def start(self, req: inj.LoadRequest, group: Group, own_id: int) -> None:
        """(Re)start generating messages in ``group`` at ``req.rate`` per second (0: stop)."""
        self.stop()
        if req.rate > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(req, group, own_id))

    def stop(self) -> None:
        """Stop generating (the counts stay)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self, req: inj.LoadRequest, group: Group, own_id: int) -> None:
        senders = [m for m in group.member if m.id != own_id] or group.member
        start = time.monotonic()
        sent = 0
        log.info(
            "load: %.0f group messages/s to %s for %.0fs",
            req.rate,
            group.uid,
            req.seconds,
        )
        total = max(1, int(req.rate * req.seconds))
        while sent < total:
            elapsed = time.monotonic() - start
            # On schedule; past the end, whatever is still due goes out at once.
            due = total if elapsed >= req.seconds else min(int(elapsed * req.rate) + 1, total)
            while sent < due:
                m = senders[sent % len(senders)]
                event = self._build(
                    inj.InjectGroupMessage(
                        group_id=group.id, sender_id=m.id, content=f"load {sent}"
                    )
                )
                sent += 1
                try:
                    await self._emit(event)
                except BufferFull as exc:
                    # Refused loudly, as a real account's message would be: counted and logged.
                    self.refused += 1
                    if self.refused == 1 or self.refused % 1000 == 0:
                        log.warning("load: %d message(s) refused so far: %s", self.refused, exc)
                    continue
                self.sent += 1
            await asyncio.sleep(0.002)
        log.info(
            "load finished: %d messages in %.1fs (%d refused)",
            sent,
            time.monotonic() - start,
            self.refused,
        )
