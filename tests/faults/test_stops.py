"""Stops that tell the truth: nothing after ``stop``, no tracebacks, honest answers."""

from __future__ import annotations

import asyncio

import msgspec

from bridge.bus.memory import MemoryBus
from bridge.clientfiles import ClientFiles
from bridge.config import Settings
from bridge.core.routing import Names
from bridge.service import Bridge
from bridge.upstream.sim.account import SimulatedAccount
from bridge.upstream.sim.settings import SimSettings
from tests.adapter.conftest import subscribe_all
from tests.conftest import ACCOUNT


def _name(body: bytes) -> str:
    b = msgspec.json.decode(body)
    if b.get("event") == "state_change":
        return f"state_change:{b['params'][1]}"
    return str(b.get("event") or b.get("post_type"))


async def test_a_stop_during_login_publishes_nothing_after_stop(ns, tmp_path):
    shared = MemoryBus()
    events = await subscribe_all(MemoryBus(shared.broker), ns)
    sim = SimulatedAccount(
        SimSettings(listen=None, login_delay=0.3, qrcode_path=tmp_path / "qr.png")
    )
    bridge = Bridge(
        MemoryBus(shared.broker),
        Names(ns),
        sim,
        Settings(account=ACCOUNT),
        files=ClientFiles(tmp_path, ACCOUNT),
    )
    run = asyncio.create_task(bridge.run())
    names: list[str] = []
    async with asyncio.timeout(10):
        while "state_change:scaning" not in names:
            names.append(_name((await events.get()).body))
    bridge.request_stop()
    async with asyncio.timeout(15):
        await run
    # Longer than the rest of the login would have taken.
    await asyncio.sleep(1.0)
    while not events.empty():
        names.append(_name(events.get_nowait().body))
    assert names[-2:] == ["state_change:stop", "stop"], names
    assert not {"state_change:confirming", "state_change:running", "login"} & set(names)
    state = msgspec.json.decode((tmp_path / f"mojo_webqq_state_{ACCOUNT}.json").read_bytes())
    assert state["state"] == "stop"


async def test_an_embedded_stop_with_sends_in_flight_logs_no_error(ns, tmp_path, caplog):
    from bridge.bus.rpc import RpcClient
    from bridge.core import commands as c
    from tests.conftest import running_bridge

    shared = MemoryBus()
    rpc = RpcClient(MemoryBus(shared.broker), Names(ns))
    # Paced sends: some run, some wait their turn in the bridge when the stop comes.
    async with running_bridge(
        MemoryBus(shared.broker), ns, tmp_path, send_interval=0.05, prefetch=16
    ) as (bridge, _sim):
        await rpc.start()
        calls = [
            asyncio.create_task(
                rpc.call(ACCOUNT, c.SendGroupMessage(uid=67890, content=f"m{i}"), timeout=20)
            )
            for i in range(40)
        ]
        async with asyncio.timeout(10):
            while bridge.server.executed < 3:
                await asyncio.sleep(0.01)
    await rpc.close()
    await asyncio.gather(*calls, return_exceptions=True)
    await asyncio.sleep(0.2)
    bad = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


async def test_a_command_that_expires_while_waiting_its_turn_is_not_sent(ns, tmp_path):
    from bridge.bus.rpc import RpcClient
    from bridge.core import commands as c
    from tests.conftest import running_bridge

    shared = MemoryBus()
    events = await subscribe_all(MemoryBus(shared.broker), ns)
    rpc = RpcClient(MemoryBus(shared.broker), Names(ns))
    async with running_bridge(MemoryBus(shared.broker), ns, tmp_path, send_interval=1.0):
        await rpc.start()
        first = msgspec.json.decode(
            await rpc.call(ACCOUNT, c.SendGroupMessage(uid=67890, content="first"), timeout=10)
        )
        assert first["code"] == 0
        # Its caller waits 10 s, but it expires after 0.2 s: the pacer holds it 1 s.
        stale = msgspec.json.decode(
            await rpc.call(
                ACCOUNT,
                c.SendGroupMessage(uid=67890, content="stale"),
                timeout=10,
                expiration_ms=200,
            )
        )
        await rpc.close()
    assert (stale["code"], stale["status"]) == (-5, "发送失败"), stale
    assert "expired" in stale["info"]
    sent = []
    while not events.empty():
        b = msgspec.json.decode(events.get_nowait().body)
        if b.get("post_type") == "send_message":
            sent.append(b["content"])
    assert sent == ["first"]


async def test_an_http_send_without_answer_is_result_unknown_not_failed(ns, tmp_path):
    import aiohttp

    from bridge.bus.topology import declare_account
    from tests.conftest import api_url, running_adapter

    shared = MemoryBus()
    # The account's queues exist, but no bridge consumes them.
    await declare_account(MemoryBus(shared.broker), Names(ns), ACCOUNT)
    async with (
        running_adapter(
            MemoryBus(shared.broker), ns, wait_replica=False, rpc_timeout=0.3
        ) as adapter,
        aiohttp.ClientSession() as s,
        s.get(api_url(adapter, "/openqq/send_group_message?uid=67890&content=x")) as r,
    ):
        body = msgspec.json.decode(await r.read())
    assert (body["code"], body["status"]) == (-3, "发送结果未知"), body
    assert "result unknown" in body["info"]
