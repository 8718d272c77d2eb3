"""The controller's /healthz, /readyz, /metrics and /status: every account it knows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import msgspec
from prometheus_client import CollectorRegistry

from bridge.bus.memory import MemoryBus
from bridge.metrics import Metrics
from tests.conftest import running_bridge, sim_url
from tests.controller.test_controller_inprocess import controller
from tests.observe.test_endpoints import sample
from tests.observe.test_status_browser import accounts_in, browse, chromium


async def test_controller_status_shows_every_account(tmp_path: Path, ns: str):
    chromium()
    metrics = Metrics(CollectorRegistry())
    async with (
        controller(tmp_path, ns, metrics=metrics, access_token="s3cret") as ctl,
        aiohttp.ClientSession() as session,
    ):
        assert ctl.bound is not None
        base = f"http://{ctl.bound[0]}:{ctl.bound[1]}"

        async def get(path: str, **params: str) -> tuple[int, str]:
            async with session.get(base + path, params=params) as r:
                return r.status, await r.text()

        assert await get("/healthz") == (200, "ok\n")
        assert await get("/readyz") == (200, "ready\n")
        assert (await get("/status"))[0] == 200  # the token applies: auth failure answer
        assert "auth failure" in (await get("/status"))[1]
        broker = ctl.bus.broker  # type: ignore[attr-defined]
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        shown: dict[str, tuple[str, int]] = {}
        async with (
            running_bridge(MemoryBus(broker), ns, tmp_path / "a", account="alpha") as (_, sim_a),
            running_bridge(MemoryBus(broker), ns, tmp_path / "b", account="beta") as (_, sim_b),
        ):
            async with asyncio.timeout(10):
                while {"alpha", "beta"} - set(ctl.apis.apis):
                    await asyncio.sleep(0.05)
            for sim, n in ((sim_a, 2), (sim_b, 1)):
                for i in range(n):
                    body = {"type": "group_message", "group_uid": 67890, "sender_uid": 456789}
                    async with session.post(
                        sim_url(sim, "/sim/inject"), json={**body, "content": f"m{i}"}
                    ) as r:
                        assert r.status == 200
            async with asyncio.timeout(10):
                while True:
                    _, text = await get("/status", access_token="s3cret", format="json")
                    shown = {
                        a["account"]: (a["state"], a["messages_in_per_minute"])
                        for a in msgspec.json.decode(text)["accounts"]
                    }
                    if shown == {"alpha": ("running", 2), "beta": ("running", 1)}:
                        break
                    await asyncio.sleep(0.5)
            dom = await asyncio.to_thread(
                browse, f"{base}/status?access_token=s3cret", "--dump-dom"
            )
            assert accounts_in(dom) == {"alpha": ("running", 2, 0), "beta": ("running", 1, 0)}
            _, text = await get("/metrics", access_token="s3cret")
            for account in ("alpha", "beta"):
                assert sample(text, "openqq_check_event_waiters", account=account) == 0
                assert sample(text, "openqq_queue_messages", account=account, queue="dead") == 0
