"""An adapter and a bridge on one in-memory broker, and an HTTP helper asserting bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bridge.adapters.openqq.adapter import OpenqqAdapter
from bridge.bus.base import Bus, Delivery
from bridge.bus.memory import MemoryBus
from bridge.bus.topology import declare_exchanges
from bridge.core.routing import Names
from bridge.service import Bridge
from bridge.upstream.sim.account import SimulatedAccount
from tests.conftest import api_url, running_adapter, running_bridge


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes


@dataclass
class Api:
    adapter: OpenqqAdapter
    bridge: Bridge
    sim: SimulatedAccount
    session: aiohttp.ClientSession
    events: asyncio.Queue[Delivery]
    bus: MemoryBus

    async def request(self, method: str, path: str, params: Any = None, **kw: Any) -> Reply:
        async with self.session.request(
            method, api_url(self.adapter, path), params=params, **kw
        ) as r:
            return Reply(r.status, r.headers, await r.read())

    async def get(self, path: str, **params: Any) -> Reply:
        return await self.request("GET", path, params or None)

    async def body(self, path: str, **params: Any) -> bytes:
        r = await self.get(path, **params)
        assert r.status == 200, r
        return r.body


async def subscribe_all(bus: Bus, ns: str) -> asyncio.Queue[Delivery]:
    names = Names(ns)
    await declare_exchanges(bus, names)
    q = await bus.declare_queue("", exclusive=True)
    await bus.bind(q, names.events, "#")
    got: asyncio.Queue[Delivery] = asyncio.Queue()

    async def on(d: Delivery) -> None:
        await d.ack()
        await got.put(d)

    await bus.consume(q, on, prefetch=1000)
    return got


@pytest.fixture
def adapter_options() -> dict[str, Any]:
    return {}


@pytest.fixture
async def api(ns, tmp_path, adapter_options) -> AsyncIterator[Api]:
    shared = MemoryBus()
    bridge_bus, adapter_bus, probe_bus = (MemoryBus(shared.broker) for _ in range(3))
    events = await subscribe_all(probe_bus, ns)
    async with (
        running_bridge(bridge_bus, ns, tmp_path) as (bridge, sim),
        running_adapter(adapter_bus, ns, **adapter_options) as adapter,
        aiohttp.ClientSession() as session,
    ):
        yield Api(adapter, bridge, sim, session, events, probe_bus)
    for b in (bridge_bus, adapter_bus, probe_bus):
        await b.close()
