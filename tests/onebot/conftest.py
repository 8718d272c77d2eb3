"""A bridge on the OneBot upstream, connected to FakeOneBot, on the in-memory bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from bridge.bus.base import Delivery
from bridge.bus.memory import MemoryBus
from bridge.bus.rpc import RpcClient
from bridge.config import Settings
from bridge.core import commands as c
from bridge.core.routing import Names
from bridge.metrics import OFF, Metrics
from bridge.service import Bridge
from bridge.upstream.onebot.account import OneBotAccount
from bridge.upstream.onebot.settings import OneBotSettings
from tests.adapter.conftest import subscribe_all
from tests.fake_onebot import FakeOneBot


@dataclass
class OB:
    fake: FakeOneBot
    account: OneBotAccount
    bridge: Bridge
    events: asyncio.Queue[Delivery]
    rpc: RpcClient

    async def call(self, cmd: c.Command, **kw: Any) -> Any:
        return msgspec.json.decode(await self.rpc.call("default", cmd, **kw))

    async def event(self, pred, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                b = msgspec.json.decode((await self.events.get()).body)
                if pred(b):
                    return b


def onebot_settings(url: str, **kw: Any) -> OneBotSettings:
    base: dict[str, Any] = {
        "url": url,
        "lifecycle_wait": 0.5,
        "action_timeout": 2.0,
        "reconnect_max": 0.3,
    }
    return OneBotSettings(**(base | kw))


@pytest.fixture
def fake() -> FakeOneBot:
    return FakeOneBot()


@pytest.fixture
def onebot_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def metrics() -> Metrics:
    """The metrics of the bridge and its account (off unless a test module says)."""
    return OFF


@pytest.fixture
async def ob(
    fake: FakeOneBot, aiohttp_server, ns, onebot_options, metrics: Metrics
) -> AsyncIterator[OB]:
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("/")).replace("http", "ws", 1)
    shared = MemoryBus()
    bus, probe = MemoryBus(shared.broker), MemoryBus(shared.broker)
    events = await subscribe_all(probe, ns)
    account = OneBotAccount(
        onebot_settings(fake.url, **onebot_options), metrics=metrics, account="default"
    )
    bridge = Bridge(
        bus, Names(ns), account, Settings(ready_wait=3), control_delay=0.05, metrics=metrics
    )
    task = asyncio.create_task(bridge.run())
    rpc = RpcClient(probe, Names(ns))
    try:
        async with asyncio.timeout(10):
            await bridge.started.wait()
        await rpc.start()
        yield OB(fake, account, bridge, events, rpc)
    finally:
        await rpc.close()
        bridge.request_stop()
        async with asyncio.timeout(15):
            await task
        await probe.close()
        await bus.close()
