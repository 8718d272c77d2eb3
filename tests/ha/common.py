"""Helpers of the high-availability tests: a bridge with the broker lease and record, injects."""

from __future__ import annotations

from pathlib import Path

import aio_pika
import aiohttp

from bridge.bus.amqp import AmqpBus
from bridge.bus.lease import BrokerLease
from bridge.bus.record import StreamRecord
from bridge.bus.topology import QueueType
from bridge.clientfiles import ClientFiles
from bridge.config import Settings
from bridge.core.routing import Names
from bridge.service import Bridge
from bridge.upstream.sim.account import SimulatedAccount
from bridge.upstream.sim.settings import SimSettings
from tests.conftest import ACCOUNT, sim_url


def ha_bridge(
    bus: AmqpBus,
    ns: str,
    files: Path,
    *,
    me: str,
    queue_type: QueueType = "classic",
    role_grace: float = 15.0,
) -> tuple[Bridge, SimulatedAccount]:
    """A bridge as ``openqq-bridge bridge`` builds it on RabbitMQ, with a simulated account."""
    files.mkdir(parents=True, exist_ok=True)
    names = Names(ns)
    sim = SimulatedAccount(
        SimSettings(listen=("127.0.0.1", 0), login_delay=0, qrcode_path=files / "qr.png")
    )
    bridge = Bridge(
        bus,
        names,
        sim,
        Settings(account=ACCOUNT, queue_type=queue_type),
        record=StreamRecord(bus, names.record_stream(ACCOUNT), hours=1),
        role=BrokerLease(bus, names.active_queue(ACCOUNT), queue_type, me=me),
        files=ClientFiles(files, ACCOUNT),
        control_delay=0.05,
        role_grace=role_grace,
    )
    return bridge, sim


async def inject_message(
    session: aiohttp.ClientSession, sim: SimulatedAccount, content: str
) -> int:
    """A friend message into the simulated account; the HTTP status."""
    r = await session.post(
        sim_url(sim, "/sim/inject"),
        json={"type": "friend_message", "sender_uid": 456789, "content": content},
    )
    return r.status


async def events_queue(
    conn: aio_pika.abc.AbstractConnection, ns: str, pattern: str
) -> aio_pika.abc.AbstractQueue:
    """An exclusive queue bound to the namespace's events exchange (declared if missing)."""
    ch = await conn.channel()
    ex = await ch.declare_exchange(f"{ns}.events", aio_pika.ExchangeType.TOPIC, durable=True)
    q = await ch.declare_queue(exclusive=True)
    await q.bind(ex, pattern)
    return q


async def amqp_bus(url: str, name: str) -> AmqpBus:
    """A bus on the real broker that retries its first connect for 5 s."""
    return await AmqpBus.connect(url, name=name, retry_seconds=5)
