"""Shared fixtures: broker probe, unique namespaces, buses, a running bridge."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aio_pika
import msgspec
import pytest

from bridge.adapters.openqq.adapter import OpenqqAdapter
from bridge.bus.amqp import AmqpBus
from bridge.bus.base import Bus, Delivery
from bridge.bus.memory import MemoryBus
from bridge.clientfiles import ClientFiles
from bridge.config import Settings
from bridge.core.commands import QUEUE_KINDS
from bridge.core.routing import Names
from bridge.metrics import OFF, Metrics
from bridge.service import Bridge
from bridge.store import CommandRecord
from bridge.upstream.sim.account import SimulatedAccount
from bridge.upstream.sim.settings import SimSettings
from tests.fakes import WebhookRecorder
from tests.proxy import TcpProxy

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ACCOUNT = "default"


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    """The broker URL; fails (CI=true) or skips (elsewhere) when nothing listens."""
    if not _broker_up():
        if os.environ.get("CI") == "true":
            pytest.fail("RabbitMQ is not answering on 127.0.0.1:5672 (CI=true: must not skip)")
        pytest.skip("RabbitMQ is not answering on 127.0.0.1:5672")
    return AMQP_URL


@pytest.fixture
def ns() -> str:
    """A namespace nobody else uses: every exchange and queue of the test is unique."""
    return f"t-{uuid.uuid4().hex[:10]}"


async def delete_namespace(url: str, ns: str, accounts: tuple[str, ...] = (ACCOUNT,)) -> None:
    """Remove what a bridge declared in ``ns`` (the CI broker keeps state between runs)."""
    names = Names(ns)
    conn = await aio_pika.connect(url)
    try:
        for account in accounts:
            for queue in [names.command_queue(account, k) for k in QUEUE_KINDS] + [
                names.dead_queue(account),
                names.active_queue(account),
                names.record_stream(account),
                f"{ns}.{account}.post_api",
            ]:
                ch = await conn.channel()
                await ch.queue_delete(queue)
                await ch.close()
        for exchange in (names.events, names.commands, names.dead):
            ch = await conn.channel()
            await ch.exchange_delete(exchange)
            await ch.close()
    finally:
        await conn.close()


@pytest.fixture
async def amqp_ns(rabbitmq: str, ns: str) -> AsyncIterator[str]:
    """A namespace on the real broker, deleted after the test."""
    yield ns
    await delete_namespace(rabbitmq, ns)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the broker is marked ``rabbitmq``, so ``-m "not rabbitmq"`` skips it.

    ``fixturenames`` is the whole fixture closure: a test that needs ``amqp_ns`` or
    ``proxied_bus`` is marked too. The ``bus_factory`` fixture asks for the broker only at run
    time, so its ``rabbitmq`` param carries the marker itself.
    """
    for item in items:
        if "rabbitmq" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.rabbitmq)


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def bus_factory(request: pytest.FixtureRequest, ns: str):
    """Makes buses of one kind (the same broker for all of a test): memory or RabbitMQ."""
    buses: list[Bus] = []
    if request.param == "rabbitmq":
        url = request.getfixturevalue("rabbitmq")

        async def make() -> Bus:
            b = await AmqpBus.connect(url, name=request.node.nodeid, retry_seconds=5)
            buses.append(b)
            return b
    else:
        shared = MemoryBus()

        async def make() -> Bus:
            b = MemoryBus(shared.broker)
            buses.append(b)
            return b

    yield make
    for b in buses:
        await b.close()
    if request.param == "rabbitmq":
        await delete_namespace(request.getfixturevalue("rabbitmq"), ns)


@pytest.fixture
async def proxied_bus(
    rabbitmq: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[TcpProxy, AmqpBus]]:
    """A RabbitMQ bus reached through a TCP proxy the test can cut and restore."""
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    bus = await AmqpBus.connect(
        f"amqp://guest:guest@127.0.0.1:{proxy.port}/?reconnect_interval=0.2",
        name=request.node.nodeid,
        retry_seconds=5,
    )
    try:
        yield proxy, bus
    finally:
        await bus.close()
        await proxy.close()


@asynccontextmanager
async def running_bridge(
    bus: Bus,
    ns: str,
    tmp_path: Path,
    *,
    record: CommandRecord | None = None,
    metrics: Metrics = OFF,
    account: str = ACCOUNT,
    **options: object,
) -> AsyncIterator[tuple[Bridge, SimulatedAccount]]:
    """A bridge with a simulated account (control endpoint on a free port), running."""
    sim = SimulatedAccount(
        SimSettings(listen=("127.0.0.1", 0), login_delay=0, qrcode_path=tmp_path / "qr.png")
    )
    opts = Settings(account=account, **options)  # type: ignore[arg-type]
    bridge = Bridge(
        bus,
        Names(ns),
        sim,
        opts,
        record=record,
        files=ClientFiles(tmp_path, account),
        control_delay=0.05,
        metrics=metrics,
    )
    task = asyncio.create_task(bridge.run())
    try:
        async with asyncio.timeout(10):
            await bridge.started.wait()
        yield bridge, sim
    finally:
        bridge.request_stop()
        async with asyncio.timeout(15):
            await task


@asynccontextmanager
async def running_adapter(
    bus: Bus, ns: str, *, wait_replica: bool = True, metrics: Metrics = OFF, **options: object
) -> AsyncIterator[OpenqqAdapter]:
    """An Openqq HTTP adapter on a free port, talking to ``ns`` over ``bus``."""
    retry_wait = float(options.pop("post_api_retry_wait", 0.5))  # type: ignore[arg-type]
    opts = Settings(account=ACCOUNT, listen="127.0.0.1:0", **options)  # type: ignore[arg-type]
    adapter = OpenqqAdapter(bus, Names(ns), opts, post_api_retry_wait=retry_wait, metrics=metrics)
    await adapter.start()
    try:
        if wait_replica:
            async with asyncio.timeout(10):
                await adapter.replica.ready.wait()
        yield adapter
    finally:
        await adapter.stop()


def api_url(adapter: OpenqqAdapter, path: str) -> str:
    """URL of an adapter endpoint."""
    assert adapter.bound is not None
    host, port = adapter.bound
    return f"http://{host}:{port}{path}"


def sim_url(sim: SimulatedAccount, path: str) -> str:
    """URL of the simulated account's control endpoint."""
    assert sim.bound is not None
    host, port = sim.bound
    return f"http://{host}:{port}{path}"


@pytest.fixture
async def hook(aiohttp_server) -> WebhookRecorder:
    """A post_api receiver that records every request (``hook.url``, with ``?client=``)."""
    rec = WebhookRecorder()
    server = await aiohttp_server(rec.app())
    rec.url = str(server.make_url("/post_api?client=default"))  # type: ignore[attr-defined]
    return rec


async def contents_of(bus: Bus, ns: str, pattern: str) -> asyncio.Queue[str]:
    """The ``content`` of every event of ``ns`` matching ``pattern``, as it arrives."""
    got: asyncio.Queue[str] = asyncio.Queue()

    async def on(d: Delivery) -> None:
        await got.put(msgspec.json.decode(d.body)["content"])

    q = await bus.declare_queue("", exclusive=True, auto_delete=True)
    await bus.bind(q, f"{ns}.events", pattern)
    await bus.consume(q, on, prefetch=500, auto_ack=True)
    return got
