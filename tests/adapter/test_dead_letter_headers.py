"""Dead letters land in ``<ns>.<account>.dead`` and say which queue they were taken from."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from bridge.bus.base import QUEUE_HEADER, REASON_HEADER, Delivery, OutMessage
from bridge.bus.deadletter import ROUTING_KEY_HEADER
from bridge.core.routing import Names
from tests.adapter.conftest import Api
from tests.conftest import ACCOUNT, sim_url
from tests.fakes import WebhookRecorder


@pytest.fixture
async def hook(aiohttp_server) -> WebhookRecorder:
    rec = WebhookRecorder()
    server = await aiohttp_server(rec.app())
    rec.url = str(server.make_url("/post_api"))  # type: ignore[attr-defined]
    rec.default = lambda _r: web.Response(status=404)
    return rec


@pytest.fixture
def adapter_options(hook: WebhookRecorder) -> dict[str, Any]:
    return {"post_api": hook.url, "post_event": False}  # type: ignore[attr-defined]


async def account_dead_letters(api: Api, ns: str) -> asyncio.Queue[Delivery]:
    """Consume the account's own dead-letter queue, as a person inspecting it would."""
    got: asyncio.Queue[Delivery] = asyncio.Queue()

    async def on(d: Delivery) -> None:
        await d.ack()
        await got.put(d)

    await api.bus.consume(Names(ns).dead_queue(ACCOUNT), on, prefetch=10)
    return got


async def test_a_command_dead_letter_names_its_queue_and_routing_key(api: Api, ns):
    dead = await account_dead_letters(api, ns)
    await api.bus.publish(
        Names(ns).commands,
        f"send.{ACCOUNT}",
        OutMessage(body=b"{not json", message_id="bad-1"),
        mandatory=True,
    )
    async with asyncio.timeout(5):
        d = await dead.get()
    assert d.body == b"{not json"
    assert d.headers[QUEUE_HEADER] == f"{ns}.{ACCOUNT}.send"
    assert d.headers[ROUTING_KEY_HEADER] == f"send.{ACCOUNT}"
    assert "invalid command" in str(d.headers[REASON_HEADER])


async def test_a_post_api_dead_letter_reaches_the_account_dead_queue(api: Api, ns):
    dead = await account_dead_letters(api, ns)
    payload = {"type": "group_message", "group_uid": 67890, "sender_uid": 456789, "content": "x"}
    async with api.session.post(sim_url(api.sim, "/sim/inject"), json=payload) as r:
        assert r.status == 200, await r.text()
    async with asyncio.timeout(5):
        d = await dead.get()
    assert b'"content":"x"' in d.body
    assert d.headers[QUEUE_HEADER] == f"{ns}.{ACCOUNT}.post_api"
    assert d.headers[ROUTING_KEY_HEADER] == f"receive_message.group_message.{ACCOUNT}"
    assert "HTTP 404" in str(d.headers[REASON_HEADER])
