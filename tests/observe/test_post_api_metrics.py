"""post_api metrics: deliveries by outcome, retries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from bridge.bus.memory import MemoryBus
from bridge.metrics import Metrics
from tests.conftest import ACCOUNT, running_adapter, running_bridge, sim_url
from tests.fakes import WebhookRecorder
from tests.observe.test_endpoints import sample


async def test_deliveries_retries_and_dead_letters_are_counted(
    ns: str, tmp_path: Path, hook: WebhookRecorder
):
    metrics = Metrics(CollectorRegistry())
    hook.default = lambda r: (
        web.Response(status=500) if b'"content":"bad"' in r.body else web.Response(text="ok")
    )
    shared = MemoryBus()
    b1, b2 = MemoryBus(shared.broker), MemoryBus(shared.broker)
    async with (
        running_bridge(b1, ns, tmp_path) as (_, sim),
        running_adapter(
            b2,
            ns,
            metrics=metrics,
            post_api=hook.url,  # type: ignore[attr-defined]
            post_api_retry_wait=0.02,
            post_event=False,
        ) as adapter,
        aiohttp.ClientSession() as session,
    ):
        body = {"type": "group_message", "group_uid": 67890, "sender_uid": 456789}
        for content in ("good", "bad", "good2"):
            async with session.post(
                sim_url(sim, "/sim/inject"), json={**body, "content": content}
            ) as r:
                assert r.status == 200
        assert adapter.forwarder is not None
        async with asyncio.timeout(10):
            while adapter.forwarder.delivered < 2 or adapter.forwarder.dead_lettered < 1:
                await asyncio.sleep(0.02)
        text = metrics.render().decode()
    a = {"account": ACCOUNT}
    assert sample(text, "openqq_post_api_deliveries_total", outcome="delivered", **a) == 2
    assert sample(text, "openqq_post_api_deliveries_total", outcome="dead_lettered", **a) == 1
    # One attempt and post_api_reject_retries (3) retries of the rejected report.
    assert sample(text, "openqq_post_api_retries_total", **a) == 3
    await b1.close()
    await b2.close()
