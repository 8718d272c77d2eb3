"""The bridge killed with SIGKILL while commands are in flight, then started again."""

from __future__ import annotations

import asyncio
import collections
import signal

import aio_pika
import msgspec
import pytest

from tests.procs import bridge_env, logs, start, stop, wait_state

pytestmark = pytest.mark.rabbitmq

N = 300


@pytest.mark.slow
async def test_sigkill_with_commands_in_flight_runs_none_twice(rabbitmq, amqp_ns, tmp_path):
    # 100 sends a second, so the kill lands in the middle of the queue.
    env = bridge_env(
        tmp_path,
        AMQP_URL=rabbitmq,
        OPENQQ_NAMESPACE=amqp_ns,
        OPENQQ_SEND_INTERVAL="0.01",
        OPENQQ_PREFETCH="16",
    )
    bridge = start(["bridge"], env, tmp_path)
    conn = await aio_pika.connect(rabbitmq)
    try:
        await asyncio.to_thread(wait_state, tmp_path, "running", bridge)
        ch = await conn.channel()
        events = await ch.declare_queue(exclusive=True)
        await events.bind(f"{amqp_ns}.events", "send_message.#")
        replies = await ch.declare_queue(exclusive=True)
        sent_events: collections.Counter[str] = collections.Counter()
        reply_by_id: dict[str, list[bytes]] = collections.defaultdict(list)

        async def on_event(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            sent_events[msgspec.json.decode(msg.body)["content"]] += 1

        async def on_reply(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            reply_by_id[msg.correlation_id or ""].append(msg.body)

        await events.consume(on_event, no_ack=True)
        await replies.consume(on_reply, no_ack=True)
        commands = await ch.get_exchange(f"{amqp_ns}.commands")

        async def publish_all() -> None:
            for i in range(N):
                body = msgspec.json.encode(
                    {"command": "send_group_message", "uid": 67890, "content": f"c{i}"}
                )
                await commands.publish(
                    aio_pika.Message(
                        body,
                        message_id=f"kill-{i}",
                        correlation_id=f"kill-{i}",
                        reply_to=replies.name,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key="send.default",
                )

        await publish_all()
        async with asyncio.timeout(20):
            while len(sent_events) < 50:
                await asyncio.sleep(0.01)
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(10)
        before_restart = len(sent_events)
        # The client retries everything with the same message ids, as a careful client would.
        await publish_all()
        bridge = start(["bridge"], env, tmp_path)
        await asyncio.to_thread(wait_state, tmp_path, "running", bridge)
        async with asyncio.timeout(60):
            while len(reply_by_id) < N:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        twice = [c for c, n in sent_events.items() if n > 1]
        assert not twice, f"executed twice: {twice[:5]}"
        answered_failed = 0
        for i in range(N):
            bodies = [msgspec.json.decode(b) for b in reply_by_id[f"kill-{i}"]]
            assert bodies, f"kill-{i} never answered"
            ok = [b for b in bodies if b["code"] == 0]
            if not ok:
                for b in bodies:
                    # 发送失败 only for what was not sent; a send that may have left is unknown.
                    if b["status"] == "发送失败":
                        assert f"c{i}" not in sent_events, b
                    else:
                        assert (b["code"], b["status"]) == (-3, "发送结果未知"), b
                        assert "result unknown" in b["info"]
                answered_failed += 1
            else:
                # Every answer to the same message id is the same answer.
                assert all(b == ok[0] for b in bodies), bodies
                assert sent_events[f"c{i}"] == 1
        print(
            f"\nFIGURES sigkill: {N} commands, {before_restart} executed before the kill,"
            f" {len(sent_events)} executed in all, none twice, {answered_failed} answered as failed,"
            f" every command answered ({sum(len(v) for v in reply_by_id.values())} replies to"
            f" {2 * N} deliveries)"
        )
    finally:
        await conn.close()
        code = await asyncio.to_thread(stop, bridge)
        assert code == 0, logs(tmp_path)
