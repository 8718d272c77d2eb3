"""Publishes on the bus's one confirm channel do not wait for each other to reach the socket."""

from __future__ import annotations

import asyncio
from typing import cast

import aiormq
import pytest

from bridge.bus.amqp import AmqpBus
from bridge.bus.base import OutMessage

pytestmark = pytest.mark.rabbitmq


async def test_concurrent_publishes_are_all_handed_over_in_one_loop_pass(
    rabbitmq: str, ns: str
) -> None:
    bus = await AmqpBus.connect(rabbitmq, name="test-publish-pipelining")
    queue = await bus.declare_queue(f"{ns}.pipelined", exclusive=True)
    try:
        channel = cast(aiormq.Channel, await bus._publish_channel.get_underlay_channel())
        tags_before = channel.delivery_tag
        publishes = [
            asyncio.create_task(
                bus.publish("", queue, OutMessage(body=b"%d" % i, persistent=False), mandatory=True)
            )
            for i in range(5)
        ]
        await asyncio.sleep(0)
        # All five took their delivery tag (and queued their frames) in the same pass; before,
        # each held the channel until its frame was written, so one publish per pass went out.
        assert channel.delivery_tag - tags_before == 5
        async with asyncio.timeout(10):
            assert await asyncio.gather(*publishes) == [True] * 5
    finally:
        await bus.close()
