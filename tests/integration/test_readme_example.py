"""The README's aio-pika example, run as written against a bridge on the real broker.

Only the broker URL, the namespace, the account, the inbox name and the timeout are
replaced (each must occur once), so the README cannot drift from what works.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from tests.procs import bridge_env, logs, run_cli, start, stop, wait_state

pytestmark = pytest.mark.rabbitmq

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example(url: str, ns: str, account: str, timeout: int = 30) -> str:
    text = README.read_text()
    section = text.split("### A downstream service in any language", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    for old, new in (
        (r'AMQP_URL = "[^"]*"', f'AMQP_URL = "{url}"'),
        (r'NS, ACCOUNT = "openqq", "default"', f'NS, ACCOUNT = "{ns}", "{account}"'),
        (r'"my-service\.inbox"', f'"{ns}.my-service.inbox"'),
        (r"TIMEOUT = 30\b", f"TIMEOUT = {timeout}"),
    ):
        code, n = re.subn(old, new, code)
        assert n == 1, f"README example: {old!r} found {n} times"
    return code


async def run_example(code: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def line(proc: asyncio.subprocess.Process, timeout: float = 20) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        return (await proc.stdout.readline()).decode().strip()


async def finish(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    async with asyncio.timeout(10):
        await proc.wait()


@pytest.fixture
async def inbox_cleanup(rabbitmq: str, amqp_ns: str) -> AsyncIterator[None]:
    yield
    async with await aio_pika.connect(rabbitmq) as conn:
        ch = await conn.channel()
        await ch.queue_delete(f"{amqp_ns}.my-service.inbox")


def declare(tmp_path: Path, rabbitmq: str, ns: str) -> None:
    done = run_cli("declare", env=bridge_env(tmp_path, AMQP_URL=rabbitmq, OPENQQ_NAMESPACE=ns))
    assert done.returncode == 0, done.stderr


async def test_the_example_sends_gets_the_reply_and_reads_messages(
    rabbitmq, amqp_ns, tmp_path, inbox_cleanup
):
    env = bridge_env(tmp_path, AMQP_URL=rabbitmq, OPENQQ_NAMESPACE=amqp_ns)
    bridge = start(["bridge"], env, tmp_path)
    try:
        await asyncio.to_thread(wait_state, tmp_path, "running", bridge)
        example = await run_example(readme_example(rabbitmq, amqp_ns, "default"))
        try:
            reply = await line(example)
            assert "'code': 0" in reply and "发送成功" in reply, reply
            # The inbox is bound before the command went out: a message now reaches it.
            async with (
                aiohttp.ClientSession() as s,
                s.post(
                    f"http://{env['OPENQQ_SIM_LISTEN']}/sim/inject",
                    json={
                        "type": "group_message",
                        "group_uid": 67890,
                        "sender_uid": 456789,
                        "content": "from-qq",
                    },
                ) as r,
            ):
                assert r.status == 200, await r.text()
            assert (await line(example)).endswith("from-qq")
        finally:
            await finish(example)
    finally:
        code = await asyncio.to_thread(stop, bridge)
    assert code == 0, logs(tmp_path)


async def test_a_misspelled_account_fails_at_once_instead_of_waiting(
    rabbitmq, amqp_ns, tmp_path, inbox_cleanup
):
    declare(tmp_path, rabbitmq, amqp_ns)  # the exchanges exist, no bridge runs
    example = await run_example(readme_example(rabbitmq, amqp_ns, "defualt"))
    try:
        assert example.stderr is not None
        async with asyncio.timeout(20):
            err = (await example.stderr.read()).decode()
            assert await example.wait() == 1
        assert "no queue takes send.defualt: check the account name" in err
    finally:
        await finish(example)


async def test_without_a_bridge_the_example_stops_waiting_and_the_command_expires(
    rabbitmq, amqp_ns, tmp_path, inbox_cleanup
):
    declare(tmp_path, rabbitmq, amqp_ns)  # the queues exist: the command waits there
    example = await run_example(readme_example(rabbitmq, amqp_ns, "default", timeout=1))
    try:
        assert await line(example) == "no reply within 1s: is the bridge of default running?"
    finally:
        await finish(example)
    async with await aio_pika.connect(rabbitmq) as conn:
        ch = await conn.channel()
        dead = await ch.declare_queue(f"{amqp_ns}.default.dead", durable=True)
        async with asyncio.timeout(10):
            while True:
                letter = await dead.get(fail=False)
                if letter is not None:
                    break
                await asyncio.sleep(0.1)
        await letter.ack()
        assert letter.headers["x-first-death-reason"] == "expired"
