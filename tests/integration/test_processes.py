"""The whole path on real RabbitMQ: bridge and HTTP adapter as separate processes."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import aiohttp
import msgspec
import pytest

from tests.procs import bridge_env, free_port, logs, start, stop, wait_state

pytestmark = pytest.mark.rabbitmq


async def wait_http(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(url) as r:
                    if r.status == 200 and (await r.read()).startswith(b"{"):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


async def test_bridge_and_adapter_processes_on_rabbitmq(rabbitmq, amqp_ns, tmp_path):
    bridge_dir, adapter_dir = tmp_path / "bridge", tmp_path / "adapter"
    bridge_dir.mkdir()
    adapter_dir.mkdir()
    common = {"AMQP_URL": rabbitmq, "OPENQQ_NAMESPACE": amqp_ns}
    bridge_env_ = bridge_env(bridge_dir, **common)
    api_port = free_port()
    adapter_env = bridge_env(
        adapter_dir, **common, OPENQQ_LISTEN=f"127.0.0.1:{api_port}", OPENQQ_CHECK_EVENT_TIMEOUT="2"
    )
    bridge = start(["bridge"], bridge_env_, bridge_dir)
    adapter = start(["adapter"], adapter_env, adapter_dir)
    conn = await aio_pika.connect(rabbitmq)
    try:
        await asyncio.to_thread(wait_state, bridge_dir, "running", bridge)
        base = f"http://127.0.0.1:{api_port}/openqq"
        await wait_http(f"{base}/get_user_info")
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        await q.bind(f"{amqp_ns}.events", "send_message.#")
        async with aiohttp.ClientSession() as s:
            async with s.get(
                f"{base}/send_group_message", params={"uid": "67890", "content": "跨进程/ok"}
            ) as r:
                reply = msgspec.json.decode(await r.read())
            assert (reply["code"], reply["status"]) == (0, "发送成功")
            event: dict = {}
            async with asyncio.timeout(10), q.iterator() as it:
                async for msg in it:
                    await msg.ack()
                    event = msgspec.json.decode(msg.body)
                    break
            assert (event["id"], event["content"]) == (reply["id"], "跨进程/ok")

            # An inbound message reaches check_event through the broker.
            sim = f"http://{bridge_env_['OPENQQ_SIM_LISTEN']}/sim/inject"
            async with s.post(
                sim, json={"type": "friend_message", "sender_uid": 456789, "content": "in"}
            ) as r:
                assert r.status == 200
            items: list = []
            async with asyncio.timeout(10):
                while not items:
                    async with s.get(f"{base}/check_event") as r:
                        items = [
                            i
                            for i in msgspec.json.decode(await r.read())
                            if i["post_type"] == "receive_message"
                        ]
            assert items[0]["content"] == "in"

            async with s.get(
                f"{base}/kick_group_member", params={"group_uid": "67890", "member_uid": "88888"}
            ) as r:
                assert await r.read() == b'{"code":0,"status":"success"}'
            # The adapter's replica follows the bridge through events.
            async with asyncio.timeout(5):
                while True:
                    async with s.get(f"{base}/search_group", params={"uid": "67890"}) as r:
                        group = msgspec.json.decode(await r.read())[0]
                    if 88888 not in [m["uid"] for m in group["member"]]:
                        break
                    await asyncio.sleep(0.05)
    finally:
        await conn.close()
        codes = await asyncio.gather(
            asyncio.to_thread(stop, adapter), asyncio.to_thread(stop, bridge)
        )
    assert list(codes) == [0, 0], logs(adapter_dir) + logs(bridge_dir)
