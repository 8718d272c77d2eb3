"""The private cluster itself: 3 nodes, a quorum queue survives kill -9 of its leader's node."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import pytest

from tests.cluster.rabbit import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

N = 500


async def _consume_all(url: str, queue_name: str, want: set[str], timeout: float) -> set[str]:
    """Take messages from ``queue_name`` through ``url`` until ``want`` is seen; retry on errors.

    Right after the leader's node dies the queue may refuse consumers until a new leader is
    elected, so errors before the deadline only mean "try again".
    """
    got: set[str] = set()
    errors: list[str] = []
    async with asyncio.timeout(timeout):
        while not want <= got:
            try:
                conn = await aio_pika.connect(url)
                async with conn:
                    ch = await conn.channel()
                    await ch.set_qos(prefetch_count=100)
                    queue = await ch.get_queue(queue_name, ensure=True)
                    async with queue.iterator() as it:
                        async for msg in it:
                            got.add(str(msg.message_id))
                            await msg.ack()
                            if want <= got:
                                break
            except (aio_pika.exceptions.AMQPError, OSError) as e:
                errors.append(f"{type(e).__name__}: {e}")
                await asyncio.sleep(0.5)
    if errors:
        print(f"\n(consumer retried {len(errors)} times; first: {errors[0]})")
    return got


async def test_quorum_queue_survives_kill_9_of_its_leaders_node(cluster: Cluster, ns: str) -> None:
    running = await asyncio.to_thread(cluster.running_nodes)
    assert running == sorted(cluster.nodename(i) for i in cluster.layout.nodes)

    queue_name = f"{ns}.smoke"
    ids = {f"m{i}" for i in range(N)}
    conn = await aio_pika.connect(cluster.urls[0])
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        for mid in sorted(ids):
            # Each publish returns once the broker confirmed it (a quorum majority has it).
            await ch.default_exchange.publish(
                aio_pika.Message(
                    mid.encode(),
                    message_id=mid,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue_name,
                mandatory=True,
            )

    leader = await asyncio.to_thread(cluster.leader, queue_name)
    other = next(i for i in cluster.layout.nodes if i != leader)
    await asyncio.to_thread(cluster.kill, leader)
    killed_at = time.monotonic()

    got = await _consume_all(cluster.urls[other - 1], queue_name, ids, timeout=60)
    consumed_in = time.monotonic() - killed_at
    assert got == ids, f"lost {len(ids - got)}, unexpected {len(got - ids)}"

    new_leader = await asyncio.to_thread(cluster.leader, queue_name, "/", other)
    assert new_leader != leader

    restart_began = time.monotonic()
    await asyncio.to_thread(cluster.start_node, leader)
    await asyncio.to_thread(cluster.wait_healthy)
    rejoined_in = time.monotonic() - restart_began

    conn = await aio_pika.connect(cluster.urls[other - 1])
    async with conn:
        ch = await conn.channel()
        await ch.queue_delete(queue_name)

    print(
        f"\nFIGURES cluster-smoke: {N} confirmed into a quorum queue through node 1, leader"
        f" node {leader} killed -9; all {len(got)} consumed through node {other}"
        f" {consumed_in:.1f} s after the kill (new leader node {new_leader});"
        f" node {leader} restarted and the cluster healthy again in {rejoined_in:.1f} s"
    )
