"""A contact book over RabbitMQ's message size limit reaches the adapter's replica, in pages.

A million members (500 groups x 2,000) make a get_group_info answer of about 200 MB, over the
broker's 128 MiB limit (the machine's broker, its default configuration): one answer can never
carry it. The adapter must still load its replica and answer reads from it.
"""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import pytest

from tests.procs import bridge_env, free_port, logs, start, stop, wait_state

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

#: RabbitMQ's default max_message_size.
BROKER_LIMIT = 128 << 20
LOADED = re.compile(
    r"contact replica of default loaded: (\d+) friends, (\d+) groups \(([\d,]+) members\)"
)


def wait_loaded(adapter_dir, adapter, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if adapter.poll() is not None:
            raise AssertionError(f"adapter exited {adapter.returncode}: {logs(adapter_dir)}")
        found = LOADED.search(logs(adapter_dir, whole=True))
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"replica not loaded within {timeout}s: {logs(adapter_dir)}")


async def test_a_replica_over_the_broker_message_limit_loads(rabbitmq, amqp_ns, tmp_path):
    bridge_dir, adapter_dir = tmp_path / "bridge", tmp_path / "adapter"
    bridge_dir.mkdir()
    adapter_dir.mkdir()
    common = {"AMQP_URL": rabbitmq, "OPENQQ_NAMESPACE": amqp_ns, "OPENQQ_SHOW_MESSAGE": "false"}
    world = {"OPENQQ_SIM_GROUPS": "500", "OPENQQ_SIM_MEMBERS": "2000", "OPENQQ_SIM_FRIENDS": "5000"}
    bridge = start(["bridge"], bridge_env(bridge_dir, **common, **world), bridge_dir)
    api_port = free_port()
    adapter = None
    try:
        await asyncio.to_thread(wait_state, bridge_dir, "running", bridge, 120)
        adapter_env = bridge_env(adapter_dir, **common, OPENQQ_LISTEN=f"127.0.0.1:{api_port}")
        adapter = start(["adapter"], adapter_env, adapter_dir)
        found = await asyncio.to_thread(wait_loaded, adapter_dir, adapter, 40)
        friends, groups, members = (int(x.replace(",", "")) for x in found.groups())
        assert friends >= 5000
        assert groups >= 500
        assert members >= 1_000_000
        # Served from the replica: the whole answer, over the limit one message can carry.
        timeout = aiohttp.ClientTimeout(total=60)
        async with (
            aiohttp.ClientSession(timeout=timeout) as s,
            s.get(f"http://127.0.0.1:{api_port}/openqq/get_group_info") as r,
        ):
            size = 0
            async for chunk in r.content.iter_chunked(1 << 20):
                size += len(chunk)
        assert r.status == 200
        assert size > BROKER_LIMIT, size
        assert "message_size" not in logs(bridge_dir, whole=True)
    finally:
        if adapter is not None:
            stop(adapter)
        stop(bridge)
