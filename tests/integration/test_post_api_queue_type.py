"""The post_api queue follows ``queue_type``: quorum on a cluster, and a clear error on a mismatch.

Before, the adapter always declared ``<ns>.<account>.post_api`` as a classic queue (one node
holds it: 1,600 of 2,000 reports lost with its node), and a queue pre-declared as quorum made
the adapter exit 2 with a message naming no setting it could change.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from bridge.bus.amqp import AmqpBus
from bridge.bus.topology import post_api_queue_arguments
from bridge.core.routing import Names
from bridge.errors import ConfigError
from tests.conftest import running_adapter, running_bridge, sim_url
from tests.fakes import WebhookRecorder
from tests.procs import bridge_env, run_cli

pytestmark = pytest.mark.rabbitmq


async def test_a_quorum_post_api_queue_carries_the_reports(
    rabbitmq, amqp_ns, tmp_path, hook: WebhookRecorder
):
    import aiohttp

    bridge_bus = await AmqpBus.connect(rabbitmq, name="test-pq-bridge")
    adapter_bus = await AmqpBus.connect(rabbitmq, name="test-pq-adapter")
    probe = await AmqpBus.connect(rabbitmq, name="test-pq-probe")
    try:
        async with (
            running_bridge(bridge_bus, amqp_ns, tmp_path, queue_type="quorum") as (_b, sim),
            running_adapter(
                adapter_bus,
                amqp_ns,
                queue_type="quorum",
                post_api=hook.url,  # type: ignore[attr-defined]
                post_event=False,
            ),
            aiohttp.ClientSession() as s,
        ):
            r = await s.post(
                sim_url(sim, "/sim/inject"),
                json={"type": "friend_message", "sender_uid": 456789, "content": "q1"},
            )
            assert r.status == 200
            async with asyncio.timeout(10):
                while True:
                    body = msgspec.json.decode((await hook.got.get()).body)
                    if body.get("content") == "q1":
                        break
            # It is a quorum queue: declaring it classic is refused by the broker.
            queue = f"{amqp_ns}.default.post_api"
            with pytest.raises(ConfigError, match="declared here as a classic queue"):
                await probe.declare_queue(
                    queue, arguments=post_api_queue_arguments(Names(amqp_ns), "classic")
                )
    finally:
        for bus in (probe, adapter_bus, bridge_bus):
            await bus.close()


async def test_an_adapter_meeting_a_quorum_queue_names_the_setting_to_change(
    rabbitmq, amqp_ns, tmp_path
):
    bus = await AmqpBus.connect(rabbitmq, name="test-pq-predeclare")
    try:
        await bus.declare_exchange(f"{amqp_ns}.dead")
        queue = await bus.declare_queue(
            f"{amqp_ns}.default.post_api",
            arguments=post_api_queue_arguments(Names(amqp_ns), "quorum"),
        )
        env = bridge_env(
            tmp_path,
            AMQP_URL=rabbitmq,
            OPENQQ_NAMESPACE=amqp_ns,
            OPENQQ_POST_API="http://127.0.0.1:9/post_api",
        )
        done = await asyncio.to_thread(run_cli, "adapter", env=env)
        assert done.returncode == 2, done.stderr
        assert f"queue '{queue}' exists on the broker with other arguments" in done.stderr
        assert "set queue_type = 'quorum' (OPENQQ_QUEUE_TYPE=quorum)" in done.stderr
        assert "on every bridge and adapter of the namespace" in done.stderr
        assert "guest:guest" not in done.stderr
        # With the setting it names, the adapter accepts the queue (no error at declare).
        adapter_bus = await AmqpBus.connect(rabbitmq, name="test-pq-adapter2")
        try:
            async with running_adapter(
                adapter_bus,
                amqp_ns,
                wait_replica=False,
                queue_type="quorum",
                post_api="http://127.0.0.1:9/post_api",
            ):
                pass
        finally:
            await adapter_bus.close()
    finally:
        await bus.close()
