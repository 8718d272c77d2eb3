"""A get_group_info of a big book is written a group at a time: the same bytes, bounded memory."""

from __future__ import annotations

import asyncio

import pytest

from bridge.adapters.openqq import routes
from tests.adapter.conftest import Api


async def _whole_then_streamed(api: Api, monkeypatch: pytest.MonkeyPatch, **params: str):
    whole = await api.get("/openqq/get_group_info", **params)
    # Every book streams: the example world holds 8 members.
    monkeypatch.setattr(routes, "STREAM_MEMBERS", 0)
    streamed = await api.get("/openqq/get_group_info", **params)
    monkeypatch.undo()
    return whole, streamed


async def test_a_streamed_group_list_has_the_bytes_and_headers_of_the_whole(api: Api, monkeypatch):
    whole, streamed = await _whole_then_streamed(api, monkeypatch)
    assert whole.headers["Content-Length"] == str(len(whole.body))
    assert streamed.status == 200
    assert streamed.headers["Transfer-Encoding"] == "chunked"
    assert streamed.body == whole.body
    assert streamed.body.startswith(b'[{"code":2617047292,') and streamed.body.endswith(b"}]")
    for name in ("Content-Type", "Access-Control-Allow-Origin"):
        assert streamed.headers[name] == whole.headers[name]


async def test_a_streamed_group_list_keeps_jsonp(api: Api, monkeypatch):
    whole, streamed = await _whole_then_streamed(api, monkeypatch, datatype="jsonp", callback="cb")
    assert whole.body.startswith(b"cb([{")
    assert streamed.body == whole.body


async def test_head_of_a_big_group_list_has_no_body(api: Api, monkeypatch):
    monkeypatch.setattr(routes, "STREAM_MEMBERS", 0)
    head = await api.request("HEAD", "/openqq/get_group_info")
    assert (head.status, head.body) == (200, b"")


async def test_an_http_1_0_client_reads_a_streamed_list_to_the_close(api: Api, monkeypatch):
    whole = await api.body("/openqq/get_group_info")
    monkeypatch.setattr(routes, "STREAM_MEMBERS", 0)
    assert api.adapter.bound is not None
    reader, writer = await asyncio.open_connection(*api.adapter.bound)
    try:
        writer.write(b"GET /openqq/get_group_info HTTP/1.0\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(10):
            raw = await reader.read(-1)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")), head
    assert b"chunked" not in head.lower()
    assert body == whole
