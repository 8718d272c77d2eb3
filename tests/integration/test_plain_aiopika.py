"""The bridge as a real process on real RabbitMQ, seen by plain aio-pika clients only.

These tests do not use the project's bus code on the client side: they are what a
downstream service in any language would do.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import aio_pika
import aiohttp
import msgspec
import pytest

from tests.procs import bridge_env, free_port, logs, start, stop, wait_state

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def bridge_proc(rabbitmq, amqp_ns, tmp_path):
    env = bridge_env(tmp_path, AMQP_URL=rabbitmq, OPENQQ_NAMESPACE=amqp_ns)
    proc = start(["bridge"], env, tmp_path)
    try:
        await asyncio.to_thread(wait_state, tmp_path, "running", proc)
        yield {"ns": amqp_ns, "sim": f"http://{env['OPENQQ_SIM_LISTEN']}"}
    finally:
        code = await asyncio.to_thread(stop, proc)
    assert code == 0, logs(tmp_path)


@pytest.fixture
async def channel(rabbitmq, request):
    conn = await aio_pika.connect(
        rabbitmq, client_properties={"connection_name": request.node.nodeid}
    )
    ch = await conn.channel()
    yield ch
    await conn.close()


async def get_one(queue: aio_pika.abc.AbstractQueue, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = await queue.get(fail=False, no_ack=True)
        if msg is not None:
            return msg
        await asyncio.sleep(0.02)
    raise AssertionError(f"nothing arrived on {queue.name} within {timeout}s")


async def bound_queue(ch, exchange: str, key: str):
    q = await ch.declare_queue(exclusive=True)
    await q.bind(exchange, key)
    return q


async def test_consumer_binding_receive_message_gets_injected_message(bridge_proc, channel):
    ns = bridge_proc["ns"]
    q = await bound_queue(channel, f"{ns}.events", "receive_message.#")
    async with aiohttp.ClientSession() as s:
        r = await s.post(
            bridge_proc["sim"] + "/sim/inject",
            json={
                "type": "group_message",
                "group_uid": 67890,
                "sender_uid": 456789,
                "content": "hi",
            },
        )
        assert r.status == 200, await r.text()
    msg = await get_one(q)
    body = msgspec.json.decode(msg.body)
    assert msg.routing_key == "receive_message.group_message.default"
    assert msg.content_type == "application/json"
    assert msg.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert msg.type == "receive_message.group_message"
    assert msg.app_id == "openqq-bridge"
    assert msg.message_id and len(msg.message_id) >= 16
    assert msg.timestamp is not None
    assert msg.headers["account"] == "default"
    assert sorted(body) == sorted(
        "class content group group_id group_uid id post_type receiver receiver_id"
        " receiver_uid sender sender_id sender_uid time type".split()
    )
    assert {k: body[k] for k in ("class", "content", "group_uid", "sender_uid", "type")} == {
        "class": "recv",
        "content": "hi",
        "group_uid": 67890,
        "sender_uid": 456789,
        "type": "group_message",
    }


async def command(ch, ns: str, body: bytes, *, reply_to: str | None, message_id: str | None = None):
    corr = uuid.uuid4().hex
    exchange = await ch.get_exchange(f"{ns}.commands")
    await exchange.publish(
        aio_pika.Message(
            body,
            content_type="application/json",
            reply_to=reply_to,
            correlation_id=corr,
            message_id=message_id or uuid.uuid4().hex,
        ),
        routing_key="send.default",
    )
    return corr


async def test_command_with_reply_to_gets_openqq_reply_and_send_event(bridge_proc, channel):
    ns = bridge_proc["ns"]
    sent = await bound_queue(channel, f"{ns}.events", "send_message.*.default")
    replies = await channel.declare_queue(exclusive=True)
    corr = await command(
        channel,
        ns,
        b'{"command":"send_group_message","uid":67890,"content":"hi"}',
        reply_to=replies.name,
    )
    reply = await get_one(replies)
    assert reply.correlation_id == corr
    body = msgspec.json.decode(reply.body)
    assert sorted(body) == ["code", "id", "info", "status"]
    assert (body["code"], body["info"], body["status"]) == (0, "发送正常", "发送成功")
    assert reply.body == (
        f'{{"code":0,"id":{body["id"]},"info":"发送正常","status":"发送成功"}}'.encode()
    )
    event = await get_one(sent)
    ev = msgspec.json.decode(event.body)
    assert event.routing_key == "send_message.group_message.default"
    assert (ev["id"], ev["content"], ev["class"], ev["group_uid"]) == (
        body["id"],
        "hi",
        "send",
        67890,
    )


async def test_undecodable_command_goes_to_dead_letters_and_bridge_keeps_serving(
    bridge_proc, channel
):
    ns = bridge_proc["ns"]
    replies = await channel.declare_queue(exclusive=True)
    await command(
        channel,
        ns,
        b'{"command":"send_group_message","uid":"x"',
        reply_to=replies.name,
        message_id="poison-1",
    )
    dead = await channel.get_queue(f"{ns}.default.dead")
    letter = await get_one(dead)
    assert letter.body == b'{"command":"send_group_message","uid":"x"'
    assert letter.message_id == "poison-1"
    assert "invalid command" in letter.headers["x-openqq-reason"]
    assert letter.headers["x-openqq-queue"] == f"{ns}.default.send"
    assert letter.headers["x-openqq-routing-key"] == "send.default"
    error = msgspec.json.decode((await get_one(replies)).body)
    assert error["code"] == -10 and "invalid command" in error["status"]
    await command(
        channel,
        ns,
        b'{"command":"send_friend_message","uid":456789,"content":"ok"}',
        reply_to=replies.name,
    )
    assert msgspec.json.decode((await get_one(replies)).body)["status"] == "发送成功"


async def test_redelivered_command_with_same_message_id_runs_once(bridge_proc, channel):
    ns = bridge_proc["ns"]
    sent = await bound_queue(channel, f"{ns}.events", "send_message.#")
    replies = await channel.declare_queue(exclusive=True)
    payload = b'{"command":"send_group_message","uid":67890,"content":"only once"}'
    for _ in range(3):
        await command(channel, ns, payload, reply_to=replies.name, message_id="same-id-1")
    got = [msgspec.json.decode((await get_one(replies)).body) for _ in range(3)]
    assert got[0] == got[1] == got[2]
    await command(
        channel,
        ns,
        b'{"command":"send_group_message","uid":67890,"content":"marker"}',
        reply_to=replies.name,
    )
    await get_one(replies)
    contents: list[str] = []
    while not contents or contents[-1] != "marker":
        contents.append(msgspec.json.decode((await get_one(sent)).body)["content"])
    assert contents == ["only once", "marker"]


def test_unreachable_broker_at_start_fails_clearly(tmp_path):
    port = free_port()  # nothing listens there
    env = bridge_env(
        tmp_path,
        AMQP_URL=f"amqp://guest:s3cret@127.0.0.1:{port}/",
        OPENQQ_CONNECT_RETRY_SECONDS="2",
    )
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "bridge"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - t0
    err = done.stderr.decode()
    assert done.returncode == 3, err
    assert f"RabbitMQ at amqp://guest:***@127.0.0.1:{port}/ unreachable after" in err
    assert err.count("not reachable (attempt") >= 2, "no retries were made"
    assert "s3cret" not in err
    assert elapsed < 30
