"""A named bot that goes away and comes back gets the events it missed, in order, once each.

The outage here is a few seconds, not 30: the durable queue holds the events however long the
bot is away (within onebot_server_queue_max and _hours), so the length makes no difference to
what is tested, and the suite stays quick.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import msgspec
import pytest

from tests.face.conftest import Env
from tests.face.test_real_bots import bot_log, bot_process
from tests.procs import free_port

pytestmark = pytest.mark.rabbitmq

OUTAGE = 3.0


async def messages_until(ws: aiohttp.ClientWebSocketResponse, last: str) -> list[str]:
    """The text of every message event until (and with) ``last``."""
    seen: list[str] = []
    async with asyncio.timeout(20):
        while True:
            frame = msgspec.json.decode((await ws.receive()).data)
            if frame.get("post_type") == "message":
                seen.append(frame["raw_message"])
                if frame["raw_message"] == last:
                    return seen


async def wait_on_bus(env: Env, text: str) -> None:
    async with asyncio.timeout(15):
        while True:
            d = await env.events.get()
            if d.routing_key.startswith("receive_message.") and text.encode() in d.body:
                return


async def test_forward_bot_gets_what_it_missed_once(env: Env) -> None:
    url = env.url.replace("http://", "ws://") + "/?bot=b1"
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url) as ws:
            await env.inject("m1")
            assert await messages_until(ws, "m1") == ["m1"]
        for text in ("m2", "m3", "m4"):
            await env.inject(text)
            await wait_on_bus(env, text)
        await asyncio.sleep(OUTAGE)
        async with s.ws_connect(url) as ws:
            first = msgspec.json.decode((await ws.receive()).data)
            assert (first["meta_event_type"], first["sub_type"]) == ("lifecycle", "connect")
            await env.inject("m5")
            assert await messages_until(ws, "m5") == ["m2", "m3", "m4", "m5"]


async def test_live_bot_gets_only_live_events(env: Env) -> None:
    url = env.url.replace("http://", "ws://") + "/"
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url) as ws:
            await env.inject("l1")
            assert await messages_until(ws, "l1") == ["l1"]
        await env.inject("l2")
        await wait_on_bus(env, "l2")
        async with s.ws_connect(url) as ws:
            await env.inject("l3")
            assert await messages_until(ws, "l3") == ["l3"]


@pytest.mark.slow
@pytest.mark.parametrize("face_options", [{"onebot_server_token": "tk"}])
async def test_nonebot_answers_each_missed_ping_once(env: Env, tmp_path: Path) -> None:
    ws = env.url.replace("http://", "ws://") + "/?bot=nb"
    script = NONEBOT_ECHO.format(port=free_port(), ws_urls=[ws], token="tk")
    with bot_process(tmp_path, script) as proc:
        for _ in range(60):
            assert proc.poll() is None, bot_log(tmp_path)
            await env.inject("ping up")
            try:
                await env.sent("pong up", timeout=1)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError(bot_log(tmp_path))
    missed = [f"ping {n}" for n in range(1, 4)]
    for text in missed:
        await env.inject(text)
        await wait_on_bus(env, text)
    await asyncio.sleep(OUTAGE)
    with bot_process(tmp_path, script) as proc:
        pongs: list[str] = []
        sent_end = False
        async with asyncio.timeout(60):
            while "pong end" not in pongs:
                assert proc.poll() is None, bot_log(tmp_path)
                if len(pongs) >= 3 and not sent_end:
                    await env.inject("ping end")
                    sent_end = True
                d = await env.events.get()
                if d.routing_key.startswith("send_message."):
                    pongs.append(msgspec.json.decode(d.body)["content"])
    # The "pong up" answers to warm-up pings sent while the first bot started may trail in.
    assert [p for p in pongs if p != "pong up"] == ["pong 1", "pong 2", "pong 3", "pong end"]


NONEBOT_ECHO = """
import nonebot
from nonebot.adapters.onebot.v11 import Adapter, MessageEvent
from nonebot import on_startswith

nonebot.init(driver="~fastapi+~websockets", host="127.0.0.1", port={port},
             onebot_ws_urls={ws_urls!r}, onebot_access_token={token!r}, log_level="INFO")
nonebot.get_driver().register_adapter(Adapter)
ping = on_startswith("ping")

@ping.handle()
async def _(event: MessageEvent):
    await ping.send("pong" + event.get_plaintext()[4:])

nonebot.run()
"""
