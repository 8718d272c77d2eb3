"""The simulated account's control endpoint answers an inject once the event is on its way."""

from __future__ import annotations

from bridge.core import events as ev
from bridge.outbox import Outbox
from bridge.upstream.sim import inject as inj
from bridge.upstream.sim.control import Control
from tests.unit.test_outbox import GatedPublisher, message, running


class Injecting:
    """Just enough of an account: an inject becomes a message put in an outbox."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def inject(self, req: inj.Inject) -> ev.Event:
        assert isinstance(req, inj.InjectFriendMessage)
        event = message(req.content)
        await self.outbox.put(event)
        return event


class Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def read(self) -> bytes:
        return self.body


async def test_the_answer_to_an_inject_is_made_after_its_publish_began() -> None:
    pub = GatedPublisher()
    outbox, task = await running(pub)
    control = Control(Injecting(outbox), None)  # type: ignore[arg-type]
    request = Body(b'{"type":"friend_message","sender_uid":456789,"content":"first"}')
    answer = await control._h_inject(request)  # type: ignore[arg-type]
    assert answer.status == 200
    # Answering first would wake the caller while the event still waits for the CPU.
    assert pub.started == ["first"]
    pub.confirm.set()
    assert await outbox.drain(1)
    task.cancel()
