"""The outbox: an idle outbox publishes at once, a busy one in order, and drain waits for all."""

from __future__ import annotations

import asyncio

from bridge.core import events as ev
from bridge.core import messages as msgs
from bridge.outbox import PUBLISH_WINDOW, Outbox


class GatedPublisher:
    """Records each publish as it starts; confirms only once ``confirm`` is set."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.confirm = asyncio.Event()

    async def publish(self, event: ev.Event, message_id: str) -> None:
        self.started.append(getattr(event, "content", event.KIND))
        await self.confirm.wait()


def message(text: str) -> ev.ReceivedFriendMessage:
    return msgs.received_friend(msgs.Said(1, 0, text), msgs.Party("s", 2, 3), msgs.Party("r", 4, 5))


async def running(
    publisher: GatedPublisher, size: int = 10_000
) -> tuple[Outbox, asyncio.Task[None]]:
    outbox = Outbox(publisher, size=size, wait=1.0)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(outbox.run())
    await asyncio.sleep(0)
    return outbox, task


async def test_an_idle_outbox_starts_the_publish_without_a_hand_over() -> None:
    pub = GatedPublisher()
    outbox, task = await running(pub)
    await outbox.put(message("now"))
    # One turn of the event loop: the publish runs, not a hand-over through the buffer first.
    await asyncio.sleep(0)
    assert pub.started == ["now"]
    pub.confirm.set()
    assert await outbox.drain(1)
    task.cancel()


async def test_order_holds_across_a_full_window_and_a_held_gate() -> None:
    pub = GatedPublisher()
    outbox, task = await running(pub)
    n = PUBLISH_WINDOW + 50
    for i in range(n):  # the window fills: the rest waits in the buffer
        await outbox.put(message(str(i)))
    outbox.hold()
    await outbox.put(message("held"))
    await asyncio.sleep(0.01)
    pub.confirm.set()
    await asyncio.sleep(0.01)
    outbox.release()
    await outbox.put(message("after"))
    assert await outbox.drain(2)
    assert pub.started == [str(i) for i in range(n)] + ["held", "after"]
    task.cancel()


async def test_drain_waits_for_events_published_at_once_and_buffered() -> None:
    pub = GatedPublisher()
    outbox, task = await running(pub)
    await outbox.put(message("at once"))
    outbox.hold()
    await outbox.put(message("buffered"))
    assert not await outbox.drain(0.05)
    outbox.release()
    pub.confirm.set()
    assert await outbox.drain(1)
    assert pub.started == ["at once", "buffered"]
    task.cancel()


async def test_discarded_events_are_not_waited_for() -> None:
    pub = GatedPublisher()
    outbox, task = await running(pub, size=4)
    outbox.hold()
    for i in range(3):
        await outbox.put(message(str(i)))
    assert outbox.discard() == 3
    assert await outbox.drain(0.1)
    assert pub.started == []
    task.cancel()
