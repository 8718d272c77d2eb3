"""``openqq-bridge run`` stopped as a real process: stop reports, pending sends, signals."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aio_pika
import aiohttp
import msgspec
import pytest
from aiohttp import web

from tests.conftest import delete_namespace
from tests.fakes import WebhookRecorder
from tests.procs import bridge_env, logs, start, stop, wait_state

BUSES = ["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]


@pytest.fixture(params=BUSES)
async def bus_env(request: pytest.FixtureRequest, ns: str) -> AsyncIterator[dict[str, str]]:
    """Settings of the bus: the embedded one, or RabbitMQ in a namespace deleted after."""
    if request.param == "memory":
        yield {}
        return
    url = request.getfixturevalue("rabbitmq")
    yield {"AMQP_URL": url, "OPENQQ_NAMESPACE": ns}
    await delete_namespace(url, ns)


async def _wait_exit(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    return await asyncio.to_thread(proc.wait, timeout)


async def _reports_until_exit(
    hook: WebhookRecorder, proc: subprocess.Popen[bytes]
) -> list[dict[str, Any]]:
    code = await _wait_exit(proc)
    assert code == 0, code
    out = []
    while not hook.got.empty():
        out.append(msgspec.json.decode(hook.got.get_nowait().body))
    return out


def _clean(tmp_path) -> None:
    err = logs(tmp_path)
    assert "Traceback" not in err, err
    assert " ERROR " not in err, err
    assert "Session is closed" not in err, err


@pytest.mark.parametrize("how", ["stop_client", "sigterm"])
async def test_the_stop_reports_reach_the_receiver(
    tmp_path, hook: WebhookRecorder, bus_env: dict[str, str], how: str
):
    env = bridge_env(tmp_path, OPENQQ_POST_API=hook.url, **bus_env)  # type: ignore[attr-defined]
    proc = start(["run"], env, tmp_path)
    try:
        await asyncio.to_thread(wait_state, tmp_path, "running", proc)
        # The forwarder is consuming once the login report arrived.
        async with asyncio.timeout(15):
            while msgspec.json.decode((await hook.got.get()).body).get("event") != "login":
                pass
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            url = f"http://{env['OPENQQ_LISTEN']}/openqq/stop_client"
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                assert (await r.json())["code"] == 0
        reports = await _reports_until_exit(hook, proc)
    finally:
        await asyncio.to_thread(stop, proc)
    assert [(r["event"], r.get("params")) for r in reports[-2:]] == [
        ("state_change", ["running", "stop"]),
        ("stop", []),
    ], reports
    _clean(tmp_path)


@pytest.mark.rabbitmq
async def test_a_stop_with_sends_pending_answers_them_honestly_and_does_not_hang(
    rabbitmq, amqp_ns, tmp_path
):
    # One send every 2 s: the bridge holds the rest, waiting their turn, when the stop comes.
    # rpc_timeout is far longer than the test may take: a caller answered at all was answered
    # by the stop, not by its timeout.
    env = bridge_env(
        tmp_path,
        AMQP_URL=rabbitmq,
        OPENQQ_NAMESPACE=amqp_ns,
        OPENQQ_SEND_INTERVAL="2",
        OPENQQ_RPC_TIMEOUT="300",
    )
    proc = start(["run"], env, tmp_path)
    base = f"http://{env['OPENQQ_LISTEN']}/openqq/send_group_message"
    try:
        await asyncio.to_thread(wait_state, tmp_path, "running", proc)
        async with aiohttp.ClientSession() as s:

            async def send(i: int) -> dict[str, Any]:
                async with s.get(base, params={"uid": "67890", "content": f"p{i}"}) as r:
                    return msgspec.json.decode(await r.read())

            first = await send(0)
            assert first["status"] == "发送成功", first
            pending = [asyncio.create_task(send(i)) for i in range(1, 6)]
            await asyncio.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(20):
                answers = await asyncio.gather(*pending)
        assert await _wait_exit(proc, 20) == 0, logs(tmp_path)
    finally:
        await asyncio.to_thread(stop, proc)
    for a in answers:
        # Sent before the stop, or result unknown: never 发送失败 for a send that may still run.
        assert a["status"] in ("发送成功", "发送结果未知"), a
        if a["status"] == "发送结果未知":
            assert a["code"] == -3
    assert any(a["status"] == "发送结果未知" for a in answers), answers
    # The withdrawn commands wait in the queue with the caller's wait as their expiration:
    # the broker drops them if no bridge takes them in time.
    conn = await aio_pika.connect(rabbitmq)
    try:
        ch = await conn.channel()
        queue = await ch.get_queue(f"{amqp_ns}.default.send")
        left = []
        while (msg := await queue.get(fail=False)) is not None:
            left.append(msg)
            await msg.ack()
    finally:
        await conn.close()
    unknown = sum(a["status"] == "发送结果未知" for a in answers)
    assert len(left) == unknown, (left, answers)
    for msg in left:
        exp = msg.expiration  # aio-pika decodes it to seconds
        if isinstance(exp, timedelta):
            exp = exp.total_seconds()
        assert isinstance(exp, int | float), exp
        assert 0 < exp <= 300
    _clean(tmp_path)


async def test_a_second_signal_exits_at_once(tmp_path, aiohttp_server):
    # A receiver that never answers keeps the graceful stop busy (the stop report drains).
    release = asyncio.Event()

    async def hang(_request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hang)
    server = await aiohttp_server(app, shutdown_timeout=0)
    env = bridge_env(tmp_path, OPENQQ_POST_API=str(server.make_url("/hook")))
    proc = start(["run"], env, tmp_path)
    try:
        await asyncio.to_thread(wait_state, tmp_path, "running", proc)
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(wait_state, tmp_path, "stop", proc)
        proc.send_signal(signal.SIGTERM)
        code = await _wait_exit(proc, 20)
    finally:
        release.set()
        await asyncio.to_thread(stop, proc)
    assert code == 128 + signal.SIGTERM, logs(tmp_path)
    assert "second SIGTERM: exiting now" in logs(tmp_path, whole=True)
