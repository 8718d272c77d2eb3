"""poll_api: the heartbeat repeats, and a redirect makes the adapter call its own API."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from aiohttp import web

from tests.adapter.conftest import Api
from tests.fakes import WebhookRecorder


@pytest.fixture
async def server(aiohttp_server):
    rec = WebhookRecorder()
    srv = await aiohttp_server(rec.app())
    rec.url = str(srv.make_url("/poll?client=default"))  # type: ignore[attr-defined]
    return rec


@pytest.fixture
def adapter_options(server: WebhookRecorder) -> dict[str, Any]:
    return {"poll_api": server.url, "poll_interval": 0.05}  # type: ignore[attr-defined]


async def test_heartbeat_follows_redirects_into_the_api(api: Api, server: WebhookRecorder):
    target = f"http://{api.adapter.bound[0]}:{api.adapter.bound[1]}/openqq/send_friend_message?uid=456789&content=from-poll"  # type: ignore[index]
    server.script = [lambda _r: web.Response(status=302, headers={"Location": target})]
    first = await server.next()
    assert first.method == "GET"
    assert first.path_qs == "/poll?client=default"
    assert "Accept" not in first.headers
    async with asyncio.timeout(5):
        while True:
            b = msgspec.json.decode((await api.events.get()).body)
            if b.get("post_type") == "send_message":
                break
    assert b["content"] == "from-poll"
    # And it keeps polling.
    await server.next()
    await server.next()
