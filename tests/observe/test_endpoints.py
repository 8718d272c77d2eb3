"""/metrics, /healthz, /readyz and /status on the adapter's port; metrics of a bridge at work."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from bridge.adapters.openqq.adapter import OpenqqAdapter
from bridge.bus.memory import MemoryBus
from bridge.clientfiles import ClientFiles
from bridge.core import events as ev
from bridge.logfmt import JsonFormatter
from bridge.metrics import Metrics
from bridge.service import Bridge
from bridge.upstream.sim.account import SimulatedAccount
from tests.conftest import ACCOUNT, api_url, running_adapter, running_bridge, sim_url


@dataclass
class Stack:
    adapter: OpenqqAdapter
    bridge: Bridge
    sim: SimulatedAccount
    metrics: Metrics
    session: aiohttp.ClientSession

    async def get(self, path: str, **params: str) -> tuple[int, str]:
        async with self.session.get(api_url(self.adapter, path), params=params) as r:
            return r.status, await r.text()

    async def inject(self, content: str) -> None:
        body = {"type": "group_message", "group_uid": 67890, "sender_uid": 456789}
        async with self.session.post(
            sim_url(self.sim, "/sim/inject"), json={**body, "content": content}
        ) as r:
            assert r.status == 200, await r.text()


@pytest.fixture
async def stack(ns: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """A `run` process in one: bridge and adapter on one broker, one registry."""
    metrics = Metrics(CollectorRegistry())
    shared = MemoryBus()
    b1, b2 = MemoryBus(shared.broker), MemoryBus(shared.broker)
    async with (
        running_bridge(b1, ns, tmp_path, metrics=metrics) as (bridge, sim),
        running_adapter(b2, ns, metrics=metrics, access_token="s3cret") as adapter,
        aiohttp.ClientSession() as session,
    ):
        yield Stack(adapter, bridge, sim, metrics, session)
    await b1.close()
    await b2.close()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in a scrape (0 when absent)."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)\{(.*)\} (\S+)", line)
        if m and m[1] == name:
            got = dict(re.findall(r'(\w+)="([^"]*)"', m[2]))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(m[3])
    return 0.0


async def test_health_needs_no_token_metrics_and_status_do(stack: Stack):
    assert await stack.get("/healthz") == (200, "ok\n")
    assert await stack.get("/readyz") == (200, "ready\n")
    assert (await stack.get("/metrics"))[0] == 403
    assert (await stack.get("/status"))[0] == 403
    status, text = await stack.get("/metrics", access_token="s3cret")
    assert status == 200
    assert "# TYPE openqq_commands_total counter" in text


async def test_counts_events_commands_and_http_requests(stack: Stack):
    await stack.inject("hello")
    status, body = await stack.get(
        "/openqq/send_group_message", access_token="s3cret", uid="67890", content="hi"
    )
    assert status == 200, body
    assert (await stack.get("/openqq/no_such_thing", access_token="s3cret"))[0] == 403
    assert (await stack.get("/favicon.ico", access_token="s3cret"))[0] == 403
    _, text = await stack.get("/metrics", access_token="s3cret")
    a = {"account": ACCOUNT}
    assert (
        sample(text, "openqq_events_published_total", type="receive_message.group_message", **a)
        == 1
    )
    assert (
        sample(text, "openqq_events_confirmed_total", type="send_message.group_message", **a) == 1
    )
    assert sample(text, "openqq_messages_total", direction="in", **a) == 1
    assert sample(text, "openqq_messages_total", direction="out", **a) == 1
    assert sample(text, "openqq_commands_total", kind="send_group_message", outcome="ok", **a) == 1
    assert sample(text, "openqq_command_seconds_count", kind="send_group_message", **a) == 1
    assert sample(text, "openqq_upstream_state", state="running", **a) == 1
    assert sample(text, "openqq_upstream_state", state="scaning", **a) == 0
    assert sample(text, "openqq_event_buffer_depth", **a) == 0
    assert (
        sample(text, "openqq_http_requests_total", endpoint="send_group_message", code="200") == 1
    )
    # Unknown paths share one label value: no unbounded label from what callers send.
    assert sample(text, "openqq_http_requests_total", endpoint="unknown", code="403") == 2
    assert "no_such_thing" not in text and "favicon" not in text


async def test_status_json_and_page(stack: Stack):
    await stack.inject("one")
    await stack.inject("two")
    status, body = await stack.get("/status", access_token="s3cret", format="json")
    assert status == 200
    data = msgspec.json.decode(body)
    (acct,) = data["accounts"]
    assert acct["account"] == ACCOUNT
    assert acct["state"] == "running"
    assert acct["state_label"] == "运行中"
    assert acct["messages_in_per_minute"] == 2
    assert set(acct["queues"]) == {"send", "kick", "shutup", "query", "control"}
    assert acct["dead_letters"] == 0
    status, page = await stack.get("/status", access_token="s3cret")
    assert status == 200
    assert "<script>" in page and "format" in page


async def test_readyz_says_why_until_the_replica_is_loaded(ns: str):
    bus = MemoryBus()
    async with (
        running_adapter(bus, ns, wait_replica=False, rpc_timeout=1) as adapter,
        aiohttp.ClientSession() as session,
    ):
        async with session.get(api_url(adapter, "/readyz")) as r:
            assert r.status == 503
            text = await r.text()
        async with session.get(api_url(adapter, "/healthz")) as r:
            assert r.status == 200
    assert text.startswith("not ready: contacts of account")
    assert text.count("\n") == 1
    await bus.close()


async def test_registries_are_separate():
    one, two = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    one.commands.labels("a", "send_group_message", "ok").inc()
    assert b"send_group_message" in one.render()
    assert b"send_group_message" not in two.render()
    off = Metrics(None)
    off.commands.labels("a", "x", "ok").inc()  # a no-op
    assert off.render() == b""


def test_json_log_lines_have_the_fields():
    fmt = JsonFormatter("acct1")
    record = logging.LogRecord("bridge.x", logging.WARNING, __file__, 1, "hi %s", ("there",), None)
    record.routing_key = "receive_message.group_message.acct1"
    line = fmt.format(record)
    obj = msgspec.json.decode(line)
    assert obj["level"] == "warning"
    assert obj["logger"] == "bridge.x"
    assert obj["account"] == "acct1"
    assert obj["message"] == "hi there"
    assert obj["routing_key"] == "receive_message.group_message.acct1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["time"])
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert "ValueError: boom" in msgspec.json.decode(fmt.format(record))["exception"]
    assert "\n" not in fmt.format(record)


def test_qr_code_file_is_logged_with_its_path(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    files = ClientFiles(tmp_path, "acct1")
    png = "iVBORw0KGgo="  # any base64
    with caplog.at_level(logging.INFO, logger="bridge.clientfiles"):
        files.on_event(ev.InputQrcode(params=[str(files.qrcode_path), png]))
    (rec,) = [r for r in caplog.records if "QR code" in r.getMessage()]
    assert str(files.qrcode_path) in rec.getMessage()
    assert rec.qrcode_path == str(files.qrcode_path)  # type: ignore[attr-defined]
    assert files.qrcode_path.exists()


async def test_readyz_names_the_reason_on_the_bridge_port():
    from bridge.status import Observer

    metrics = Metrics(CollectorRegistry())
    state = ["loading"]
    observer = Observer(
        metrics, lambda: None if state[0] == "running" else f"account is {state[0]}"
    )
    app = observer.app()
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(app)) as client:
        r = await client.get("/readyz")
        assert r.status == 503
        assert await r.text() == "not ready: account is loading\n"
        state[0] = "running"
        assert (await client.get("/readyz")).status == 200
        assert (await client.get("/metrics")).status == 200
        assert (await client.get("/openqq/send")).status == 404
    await asyncio.sleep(0)


async def test_command_outcomes_duplicate_and_dead_lettered(stack: Stack, ns: str):
    from bridge.bus.base import OutMessage
    from bridge.core import commands as c
    from bridge.core.routing import Names

    rpc = stack.adapter.rpc
    cmd = c.SendGroupMessage(uid=67890, content="once")
    await rpc.call(ACCOUNT, cmd, timeout=10, message_id="dup-1")
    await rpc.call(ACCOUNT, cmd, timeout=10, message_id="dup-1")
    await stack.adapter.bus.publish(
        Names(ns).commands,
        f"send.{ACCOUNT}",
        OutMessage(body=b"{not json", message_id="bad-1"),
        mandatory=True,
    )
    async with asyncio.timeout(10):
        while stack.bridge.server.dead_lettered < 1:
            await asyncio.sleep(0.01)
    _, text = await stack.get("/metrics", access_token="s3cret")
    a = {"account": ACCOUNT}
    assert sample(text, "openqq_commands_total", kind="send_group_message", outcome="ok", **a) == 1
    assert (
        sample(text, "openqq_commands_total", kind="send_group_message", outcome="duplicate", **a)
        == 1
    )
    assert sample(text, "openqq_commands_total", kind="invalid", outcome="dead_lettered", **a) == 1


def test_recent_errors_are_picked_by_account_name_as_a_word():
    from bridge.status import RecentErrors

    ring = RecentErrors()
    log = logging.getLogger("test.recent")
    log.addHandler(ring)
    try:
        log.warning("account a: broker gone")
        log.warning("bad data, parse error")
        log.warning("account abc: other")
        log.warning("no account named", extra={"account": "a"})
        log.info("not kept")
    finally:
        log.removeHandler(ring)
    got = ring.of("a")
    assert len(got) == 2
    assert got[0].endswith("WARNING account a: broker gone")
    assert got[1].endswith("WARNING no account named")
