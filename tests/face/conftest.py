"""A bridge (simulated account) and the OneBot face on the real broker, and helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.adapters.onebot.face import OneBotFace
from bridge.bus.amqp import AmqpBus
from bridge.bus.base import Delivery
from bridge.config import Settings
from bridge.core.routing import Names
from bridge.service import Bridge
from bridge.upstream.sim.account import SimulatedAccount
from tests.adapter.conftest import subscribe_all
from tests.conftest import ACCOUNT, delete_namespace, running_bridge, sim_url

#: The simulated account's QQ number, a group it is in and a member of that group.
SELF_ID = 123456
GROUP = 67890
MEMBER = 456789


@dataclass
class Env:
    bridge: Bridge
    sim: SimulatedAccount
    face: OneBotFace
    events: asyncio.Queue[Delivery]
    url: str
    rabbitmq: str
    ns: str
    tmp_path: Path

    async def inject(self, content: str, *, group: int = GROUP, sender: int = MEMBER) -> None:
        body = {
            "type": "group_message",
            "group_uid": group,
            "sender_uid": sender,
            "content": content,
        }
        async with (
            aiohttp.ClientSession() as s,
            s.post(sim_url(self.sim, "/sim/inject"), json=body) as r,
        ):
            assert r.status == 200, await r.text()

    async def sent(self, text: str, timeout: float = 20) -> Delivery:
        """The next send_message event on the bus with this content."""
        async with asyncio.timeout(timeout):
            while True:
                d = await self.events.get()
                if d.routing_key.startswith("send_message.") and text.encode() in d.body:
                    return d


@asynccontextmanager
async def running_face(bus: AmqpBus, ns: str, **options: Any) -> AsyncIterator[OneBotFace]:
    heartbeat = float(options.pop("heartbeat_seconds", 15.0))
    opts = Settings(account=ACCOUNT, onebot_server_listen="127.0.0.1:0", **options)
    face = OneBotFace(bus, Names(ns), opts, heartbeat_seconds=heartbeat, retry_wait=0.2)
    await face.start()
    try:
        async with asyncio.timeout(15):
            await face.replica.ready.wait()
        yield face
    finally:
        await face.stop()


@pytest.fixture
def face_options() -> dict[str, Any]:
    return {}


@pytest.fixture
async def env(
    rabbitmq: str,
    ns: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    face_options: dict[str, Any],
) -> AsyncIterator[Env]:
    async with face_env(rabbitmq, ns, tmp_path, request, **face_options) as e:
        yield e


@asynccontextmanager
async def face_env(
    rabbitmq: str, ns: str, tmp_path: Path, request: pytest.FixtureRequest, **face_options: Any
) -> AsyncIterator[Env]:
    """A bridge, the face and a probe of every event, on three connections to the broker."""
    buses = [
        await AmqpBus.connect(rabbitmq, name=request.node.nodeid, retry_seconds=5) for _ in range(3)
    ]
    try:
        events = await subscribe_all(buses[2], ns)
        async with (
            running_bridge(buses[0], ns, tmp_path) as (bridge, sim),
            running_face(buses[1], ns, **face_options) as face,
        ):
            assert face.bound is not None
            host, port = face.bound
            yield Env(bridge, sim, face, events, f"http://{host}:{port}", rabbitmq, ns, tmp_path)
    finally:
        for b in buses:
            await b.close()
        await delete_namespace(rabbitmq, ns)
        await delete_bot_queues(rabbitmq, ns)


async def delete_bot_queues(
    url: str, ns: str, bots: tuple[str, ...] = ("nb", "cq", "hook", "b1")
) -> None:
    import aio_pika

    conn = await aio_pika.connect(url)
    try:
        for bot in bots:
            ch = await conn.channel()
            await ch.queue_delete(f"{ns}.onebot.{ACCOUNT}.{bot}")
            await ch.close()
    finally:
        await conn.close()
