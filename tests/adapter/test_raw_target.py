"""Raw UTF-8 bytes in the request target, over a plain socket, as curl and PHP send them."""

from __future__ import annotations

import asyncio
import shutil
from unittest import mock

import pytest

from bridge.adapters.openqq.httpserver import RawTargetParser
from tests.adapter.conftest import Api
from tests.adapter.test_endpoints import SENT, next_sent
from tests.conftest import api_url

测试 = "测试".encode()


async def _exchange(api: Api, raw: bytes, responses: int) -> list[tuple[bytes, bytes]]:
    """Send raw bytes on one connection; read ``responses`` responses (head, body)."""
    assert api.adapter.bound is not None
    reader, writer = await asyncio.open_connection(*api.adapter.bound)
    try:
        writer.write(raw)
        await writer.drain()
        out = []
        async with asyncio.timeout(10):
            for _ in range(responses):
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                out.append((head, await reader.readexactly(length)))
        return out
    finally:
        writer.close()


def _get(target: bytes, *, close: bool = False) -> bytes:
    conn = b"Connection: close\r\n" if close else b""
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + conn + b"\r\n"


async def test_raw_utf8_in_query_path_keep_alive_and_post_body(api: Api):
    form = b"uid=67890&content=" + 测试 + b"%20body"
    post = (
        b"POST /openqq/send_group_message?x=" + 测试 + b" HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form
    )
    # Pipelined on one keep-alive connection: query, path, a POST whose body has high bytes.
    raw = (
        _get(b"/openqq/send_group_message?uid=67890&content=" + 测试)
        + _get(b"/openqq/" + 测试)
        + post
        + _get(
            b"/openqq/send_group_message?uid=67890&content=%E6%B5%8B" + "试".encode(), close=True
        )
    )
    (h1, b1), (h2, b2), (h3, b3), (h4, b4) = await _exchange(api, raw, 4)
    assert h1.startswith(b"HTTP/1.1 200 ") and SENT.fullmatch(b1), (h1, b1)
    assert (await next_sent(api))["content"] == "测试"
    # Not an Openqq path: the original's answer, not a parser error.
    assert h2.startswith(b"HTTP/1.1 403 ") and b2 == b"api not found"
    # The body is form data decoded as UTF-8, untouched by the request-line rewrite.
    assert h3.startswith(b"HTTP/1.1 200 ") and SENT.fullmatch(b3), (h3, b3)
    assert (await next_sent(api))["content"] == "测试 body"
    assert SENT.fullmatch(b4) and b"Access-Control-Allow-Origin: *" in h4
    assert (await next_sent(api))["content"] == "测试"


async def test_http_layer_errors_carry_cors(api: Api):
    ((head, _),) = await _exchange(api, b"GET /openqq/x\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert head.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), head
    assert b"Access-Control-Allow-Origin: *" in head


async def test_parser_rewrites_only_the_request_line():
    parser = RawTargetParser(mock.Mock(), asyncio.get_running_loop(), 2**16)
    messages, _, _ = parser.feed_data(
        b"GET /a/\xe6\xb5\x8b?b=\xe6\xb5\x8b HTTP/1.1\r\nHost: x\r\nX-Name: \xe6\xb5\x8b\r\n\r\n"
    )
    ((msg, _),) = messages
    assert msg.path == "/a/%E6%B5%8B?b=%E6%B5%8B"
    assert msg.url.path == "/a/测" and msg.url.query["b"] == "测"
    # Headers are left as aiohttp reads them.
    assert msg.raw_headers[1] == (b"X-Name", b"\xe6\xb5\x8b")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_with_a_literal_utf8_query(api: Api):
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "-i",
        "-g",
        api_url(api.adapter, "/openqq/send_group_message?uid=67890&content=测试"),
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(15):
        out, _ = await proc.communicate()
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), out
    assert SENT.fullmatch(body)
    assert (await next_sent(api))["content"] == "测试"


async def test_bytes_that_are_not_utf8_become_replacement_characters(api: Api):
    raw = _get(b"/openqq/send_group_message?uid=67890&content=a\xffb%FEc", close=True)
    ((head, body),) = await _exchange(api, raw, 1)
    assert SENT.fullmatch(body), (head, body)
    assert (await next_sent(api))["content"] == "a\ufffdb\ufffdc"
