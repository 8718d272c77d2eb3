"""Parts of the controller on their own: restart back-off, presence announcements."""

from __future__ import annotations

import asyncio

import msgspec

from bridge.bus.memory import MemoryBus
from bridge.bus.presence import PresenceAnnouncer
from bridge.controller.supervisor import restart_pause
from bridge.core.presence import Presence
from bridge.core.routing import Names


def test_restart_pause_doubles_with_jitter_up_to_a_minute():
    for failures, full in [(0, 1), (1, 2), (2, 4), (5, 32), (6, 60), (50, 60)]:
        pauses = [restart_pause(failures) for _ in range(200)]
        assert all(full / 2 <= p <= full for p in pauses), (failures, min(pauses), max(pauses))
        assert max(pauses) - min(pauses) > full / 10  # jittered, not one fixed value


async def test_presence_at_start_on_change_and_a_last_stop():
    bus = MemoryBus()
    names = Names("t-presence")
    await bus.declare_exchange(names.events)
    q = await bus.declare_queue("", exclusive=True)
    await bus.bind(q, names.events, "presence.bridge.*")
    got: asyncio.Queue[tuple[str, Presence]] = asyncio.Queue()

    async def on(d) -> None:
        await d.ack()
        await got.put((d.routing_key, msgspec.json.decode(d.body, type=Presence)))

    await bus.consume(q, on, prefetch=10)
    state = ["init"]

    def snapshot() -> Presence:
        return Presence(
            account="bot1",
            state=state[0],
            host="h",
            pid=1,
            start_time=2,
            version="v",
            upstream="sim",
            interval=60.0,
        )

    active = [False]
    ann = PresenceAnnouncer(bus, names, lambda: snapshot() if active[0] else None, interval=60.0)
    ann.start()
    await asyncio.sleep(0.1)
    assert got.empty()  # a standby says nothing
    active[0] = True
    ann.changed()
    async with asyncio.timeout(5):
        key, first = await got.get()
        assert (key, first.state) == ("presence.bridge.bot1", "init")
        state[0] = "running"
        ann.changed()  # long before the next interval
        assert (await got.get())[1].state == "running"
        state[0] = "stop"
        await ann.stop()
        assert (await got.get())[1].state == "stop"
    assert got.empty()
    # A standby that never spoke sends no last stop either.
    silent = PresenceAnnouncer(bus, names, lambda: None, interval=60.0)
    silent.start()
    await asyncio.sleep(0.1)
    await silent.stop()
    await asyncio.sleep(0.1)
    assert got.empty()
    await bus.close()
