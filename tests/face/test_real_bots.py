"""Real bot frameworks against the face: NoneBot2 (forward and reverse WebSocket) and aiocqhttp
(HTTP API + HTTP POST, reverse WebSocket). Each bot answers ``ping`` with ``pong``; a ``ping``
injected into the simulated account reaches it through RabbitMQ and the face, and its answer
comes back as a ``send_message`` event on the bus. The bots run in subprocesses, from a script
each test writes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.face.conftest import GROUP, Env, face_env
from tests.procs import free_port

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

TOKEN = "t0ken-for-bots"

NONEBOT = """
import nonebot
from nonebot.adapters.onebot.v11 import Adapter
from nonebot import on_fullmatch

nonebot.init(driver="~fastapi+~websockets", host="127.0.0.1", port={port},
             onebot_ws_urls={ws_urls!r}, onebot_access_token={token!r}, log_level="INFO")
nonebot.get_driver().register_adapter(Adapter)
ping = on_fullmatch("ping")

@ping.handle()
async def _():
    await ping.send("pong from nonebot")

nonebot.run()
"""

AIOCQHTTP = """
from aiocqhttp import CQHttp

bot = CQHttp(api_root={api_root!r}, access_token={token!r}, secret={secret!r})

@bot.on_message("group")
async def _(event):
    if event.raw_message == "ping":
        await bot.send(event, "pong from aiocqhttp")

bot.run(host="127.0.0.1", port={port})
"""


@contextmanager
def bot_process(tmp_path: Path, source: str) -> Iterator[subprocess.Popen[bytes]]:
    script = tmp_path / "bot.py"
    script.write_text(textwrap.dedent(source))
    log = (tmp_path / "bot.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def bot_log(tmp_path: Path) -> str:
    return (tmp_path / "bot.log").read_text(errors="replace")[-4000:]


async def ping_pong(
    env: Env, tmp_path: Path, proc: subprocess.Popen[bytes], pong: str, attempts: int = 60
) -> None:
    """Inject ping once a second until the bot's pong is on the bus (the bot may still start)."""
    for _ in range(attempts):
        assert proc.poll() is None, bot_log(tmp_path)
        await env.inject("ping")
        try:
            d = await env.sent(pong, timeout=1)
        except TimeoutError:
            continue
        assert d.routing_key == "send_message.group_message.default"
        assert f'"group_uid":{GROUP}'.encode() in d.body
        return
    raise AssertionError(f"no {pong!r} on the bus; bot log:\n{bot_log(tmp_path)}")


TOKEN_OPTIONS: dict[str, Any] = {"onebot_server_token": TOKEN}


@pytest.mark.parametrize("face_options", [TOKEN_OPTIONS])
async def test_nonebot_forward_websocket(env: Env, tmp_path: Path) -> None:
    ws = env.url.replace("http://", "ws://") + "/?bot=nb"
    src = NONEBOT.format(port=free_port(), ws_urls=[ws], token=TOKEN)
    with bot_process(tmp_path, src) as proc:
        await ping_pong(env, tmp_path, proc, "pong from nonebot")


async def test_nonebot_reverse_websocket(
    rabbitmq: str, ns: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    src = NONEBOT.format(port=port, ws_urls=[], token=TOKEN)
    with bot_process(tmp_path, src) as proc:
        async with face_env(
            rabbitmq,
            ns,
            tmp_path,
            request,
            onebot_server_token=TOKEN,
            onebot_server_reverse=[f"nb=ws://127.0.0.1:{port}/onebot/v11/ws"],
        ) as env:
            await ping_pong(env, tmp_path, proc, "pong from nonebot")


async def test_aiocqhttp_http_api_and_http_post(
    rabbitmq: str, ns: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    async with face_env(
        rabbitmq,
        ns,
        tmp_path,
        request,
        onebot_server_token=TOKEN,
        onebot_server_secret="s1gn",
        onebot_server_post=[f"cq=http://127.0.0.1:{port}/"],
    ) as env:
        src = AIOCQHTTP.format(api_root=env.url, token=TOKEN, secret="s1gn", port=port)
        with bot_process(tmp_path, src) as proc:
            await ping_pong(env, tmp_path, proc, "pong from aiocqhttp")


async def test_aiocqhttp_reverse_websocket(
    rabbitmq: str, ns: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    src = AIOCQHTTP.format(api_root=None, token=TOKEN, secret=None, port=port)
    with bot_process(tmp_path, src) as proc:
        async with face_env(
            rabbitmq,
            ns,
            tmp_path,
            request,
            onebot_server_token=TOKEN,
            onebot_server_reverse=[f"ws://127.0.0.1:{port}/ws/"],
        ) as env:
            await ping_pong(env, tmp_path, proc, "pong from aiocqhttp")
