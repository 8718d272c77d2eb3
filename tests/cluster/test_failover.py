"""Failover over the URL list on the private cluster: no TCP balancer, nothing lost.

The bridge and the adapter get every node's URL (``amqp_url`` as a list), ``queue_type =
quorum``; then the node they are connected to is killed with ``kill -9`` mid-stream. Each
test prints its figures (``FIGURES ...``), which RELIABILITY.md reports.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from dataclasses import dataclass, field

import aio_pika
import aiohttp
import msgspec
import pytest
from yarl import URL

from bridge.adapters.openqq.adapter import OpenqqAdapter
from bridge.bus.amqp import AmqpBus
from bridge.upstream.sim.account import SimulatedAccount
from tests.cluster.rabbit import Cluster
from tests.conftest import api_url, running_adapter, running_bridge, sim_url
from tests.fakes import WebhookRecorder

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(240)]


def node_of(cluster: Cluster, bus: AmqpBus) -> int:
    """The node (1..3) a bus is connected to."""
    port = URL(bus.current_url).port
    return next(i for i in cluster.layout.nodes if cluster.layout.amqp_port(i) == port)


def starting_at(cluster: Cluster, first: int) -> list[str]:
    """Every node's URL, node ``first`` first: the order a process tries them in."""
    urls = cluster.urls
    return urls[first - 1 :] + urls[: first - 1]


async def until_on_another_node(cluster: Cluster, bus: AmqpBus, dead: int) -> None:
    async with asyncio.timeout(60):
        while not bus.connected or node_of(cluster, bus) == dead:
            await asyncio.sleep(0.05)


def max_gap(stamps: list[float], after: float) -> float:
    """The longest pause between two consecutive stamps, counting from ``after``."""
    times = sorted([after, *(t for t in stamps if t >= after)])
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@dataclass
class EventSink:
    """A plain consumer of the account's receive_message events, on a node that stays up."""

    seen: list[str] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)

    async def on(self, msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.seen.append(msgspec.json.decode(msg.body)["content"])
        self.stamps.append(time.monotonic())

    async def start(self, url: str, ns: str) -> aio_pika.abc.AbstractConnection:
        conn = await aio_pika.connect(url)
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=1000)
        await ch.declare_exchange(f"{ns}.events", aio_pika.ExchangeType.TOPIC, durable=True)
        q = await ch.declare_queue(exclusive=True)
        await q.bind(f"{ns}.events", "receive_message.#")
        await q.consume(self.on, no_ack=True)
        return conn


@dataclass
class Sender:
    """Sends over the adapter's HTTP API at a steady rate; records each answer's code and time."""

    adapter: OpenqqAdapter
    codes: list[int] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)

    async def run(self, rate: float, n: int) -> None:
        url = api_url(self.adapter, "/openqq/send_group_message")
        async with aiohttp.ClientSession() as s:

            async def one(i: int) -> None:
                await asyncio.sleep(i / rate)
                async with s.get(url, params={"uid": "67890", "content": f"c{i}"}) as r:
                    answer = msgspec.json.decode(await r.read())
                self.codes.append(answer["code"])
                self.done_at.append(time.monotonic())

            await asyncio.gather(*(one(i) for i in range(n)))

    def ok_gap(self, after: float) -> float:
        return max_gap([t for t, c in zip(self.done_at, self.codes, strict=True) if c == 0], after)


async def load(sim: SimulatedAccount, rate: float, seconds: float) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(sim_url(sim, "/sim/load"), json={"rate": rate, "seconds": seconds}) as r,
    ):
        assert r.status == 200


async def test_bridge_and_adapter_fail_over_when_their_node_is_killed(
    cluster: Cluster, ns: str, tmp_path
) -> None:
    urls = cluster.urls  # node 1 first: both processes connect to node 1
    bridge_bus = await AmqpBus.connect(urls, name="cluster-failover-bridge")
    adapter_bus = await AmqpBus.connect(urls, name="cluster-failover-adapter")
    sink = EventSink()
    sink_conn = await sink.start(cluster.urls[2], ns)
    try:
        assert node_of(cluster, bridge_bus) == node_of(cluster, adapter_bus) == 1
        async with (
            running_bridge(bridge_bus, ns, tmp_path, queue_type="quorum") as (_b, sim),
            running_adapter(adapter_bus, ns, queue_type="quorum", rpc_timeout=30) as adapter,
        ):
            events, rate, seconds = 2000, 200.0, 10.0
            sender = Sender(adapter)
            await load(sim, rate, seconds)
            sending = asyncio.create_task(sender.run(rate=40, n=400))
            await asyncio.sleep(3.0)
            await asyncio.to_thread(cluster.kill, 1)
            killed_at = time.monotonic()
            await until_on_another_node(cluster, bridge_bus, 1)
            await until_on_another_node(cluster, adapter_bus, 1)
            moved = time.monotonic() - killed_at
            async with asyncio.timeout(120):
                await sending
                while len(set(sink.seen)) < events:
                    await asyncio.sleep(0.1)
            bridge_node, adapter_node = node_of(cluster, bridge_bus), node_of(cluster, adapter_bus)
        lost = len({f"load {i}" for i in range(events)} - set(sink.seen))
        codes = collections.Counter(sender.codes)
        print(
            f"\nFIGURES cluster-url-failover: node 1 killed (kill -9) with bridge and adapter on it;"
            f" both on node {bridge_node}/{adapter_node} {moved:.1f}s later (no balancer);"
            f" events: {events} in, {len(set(sink.seen))} distinct out, lost {lost},"
            f" longest gap {max_gap(sink.stamps, killed_at - 1):.1f}s;"
            f" commands: {len(sender.codes)} sends answered {dict(codes)},"
            f" longest gap between successes {sender.ok_gap(killed_at - 1):.1f}s"
        )
        assert lost == 0
        assert len(sender.codes) == 400, "every send was answered"
        # -3 (result unknown) is honest for a send the dying bridge had handed to QQ; -5
        # (failed) would be false: every command here could be carried out.
        assert codes[-5] == 0, dict(codes)
        assert bridge_node != 1
        assert adapter_node != 1
    finally:
        await sink_conn.close()
        await adapter_bus.close()
        await bridge_bus.close()


async def test_post_api_queue_loses_nothing_when_its_node_is_killed(
    cluster: Cluster, ns: str, tmp_path, hook: WebhookRecorder
) -> None:
    # The adapter declares the post_api queue through node 1 (its leader); the bridge is on 2.
    bridge_bus = await AmqpBus.connect(starting_at(cluster, 2), name="cluster-pq-bridge")
    adapter_bus = await AmqpBus.connect(starting_at(cluster, 1), name="cluster-pq-adapter")
    try:
        async with (
            running_bridge(bridge_bus, ns, tmp_path, queue_type="quorum") as (_b, sim),
            running_adapter(
                adapter_bus,
                ns,
                queue_type="quorum",
                post_api=hook.url,  # type: ignore[attr-defined]
                post_event=False,
            ),
        ):
            queue = f"{ns}.default.post_api"
            leader = await asyncio.to_thread(cluster.leader, queue)
            assert leader == node_of(cluster, adapter_bus) == 1
            reports, rate = 2000, 400.0
            posted: list[str] = []

            async def collect() -> None:
                while True:
                    body = msgspec.json.decode((await hook.got.get()).body)
                    if body.get("post_type") == "receive_message":
                        posted.append(body["content"])

            collector = asyncio.create_task(collect())
            await load(sim, rate, reports / rate)
            async with asyncio.timeout(30):
                while len(posted) < 400:
                    await asyncio.sleep(0.02)
            before_kill = len(posted)
            await asyncio.to_thread(cluster.kill, 1)
            killed_at = time.monotonic()
            async with asyncio.timeout(120):
                while len(set(posted)) < reports:
                    await asyncio.sleep(0.1)
            took = time.monotonic() - killed_at
            await asyncio.sleep(1.0)  # late duplicates, if any
            collector.cancel()
            new_leader = await asyncio.to_thread(cluster.leader, queue, "/", 2)
        distinct = set(posted)
        lost = len({f"load {i}" for i in range(reports)} - distinct)
        print(
            f"\nFIGURES cluster-post-api: {reports} reports at {rate:g}/s, the post_api queue's"
            f" node (leader, node 1, also the adapter's) killed after {before_kill} were posted;"
            f" posted {len(distinct)} distinct, lost {lost},"
            f" posted twice {len(posted) - len(distinct)} (redelivered after the kill);"
            f" all posted {took:.1f}s after the kill; new leader node {new_leader}"
        )
        assert lost == 0
        assert distinct == {f"load {i}" for i in range(reports)}
    finally:
        await adapter_bus.close()
        await bridge_bus.close()


async def test_an_adapter_failing_over_answers_sends_after_waiting(
    cluster: Cluster, ns: str, tmp_path
) -> None:
    # Only the adapter loses its node: every failure it answered would be a false one.
    bridge_bus = await AmqpBus.connect(starting_at(cluster, 2), name="cluster-rpc-bridge")
    adapter_bus = await AmqpBus.connect(starting_at(cluster, 1), name="cluster-rpc-adapter")
    # (content, message_id): the same event re-published after a lost confirm keeps its
    # message_id; a send executed twice would show two message_ids for one content.
    sent_events: list[tuple[str, str | None]] = []
    watch = await aio_pika.connect(cluster.urls[2])
    try:
        ch = await watch.channel()
        await ch.declare_exchange(f"{ns}.events", aio_pika.ExchangeType.TOPIC, durable=True)
        q = await ch.declare_queue(exclusive=True)
        await q.bind(f"{ns}.events", "send_message.#")

        async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            sent_events.append((msgspec.json.decode(msg.body)["content"], msg.message_id))

        await q.consume(on, no_ack=True)
        async with (
            running_bridge(bridge_bus, ns, tmp_path, queue_type="quorum"),
            running_adapter(adapter_bus, ns, queue_type="quorum", rpc_timeout=30) as adapter,
        ):
            assert node_of(cluster, adapter_bus) == 1
            assert node_of(cluster, bridge_bus) == 2
            n, rate = 1000, 200.0
            sender = Sender(adapter)
            sending = asyncio.create_task(sender.run(rate=rate, n=n))
            await asyncio.sleep(2.0)
            await asyncio.to_thread(cluster.kill, 1)
            killed_at = time.monotonic()
            async with asyncio.timeout(120):
                await sending
            await asyncio.sleep(1.0)  # the last send_message events
        codes = collections.Counter(sender.codes)
        executed = collections.Counter(content for content, _ in set(sent_events))
        false_failures = codes[-5]
        print(
            f"\nFIGURES cluster-adapter-failover: {n} sends at {rate:g}/s, the adapter's node"
            f" killed (kill -9) at 2s: answers {dict(codes)}, false failures {false_failures},"
            f" result unknown {codes[-3]}; sent {len(executed)} distinct,"
            f" {sum(v > 1 for v in executed.values())} twice"
            f" ({len(sent_events) - len(set(sent_events))} send_message events re-published);"
            f" longest gap between successes {sender.ok_gap(killed_at - 1):.1f}s"
        )
        assert false_failures == 0
        assert codes[0] == len(executed) == n
        assert all(v == 1 for v in executed.values())
    finally:
        await watch.close()
        await adapter_bus.close()
        await bridge_bus.close()
