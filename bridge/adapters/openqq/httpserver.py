"""The HTTP layer under the Openqq API: raw UTF-8 request targets, CORS on protocol errors.

Legacy callers (curl with a literal ``content=测试``, PHP ``file_get_contents``, hand-written
socket clients) send bytes ≥ 0x80 unencoded in the request target. Mojolicious takes them
and decodes them as UTF-8; aiohttp's C parser (llhttp) answers ``400 Invalid char in url``.
This runner parses requests with aiohttp's own pure-Python parser and percent-encodes the
high bytes of the request line before it is parsed, so ``content=测试`` and
``content=%E6%B5%8B%E8%AF%95`` are the same request. Only the request line is touched: the
parser hands over one message's head at a time, so headers, bodies and pipelined requests
stay as aiohttp frames them.

aiohttp offers no public hook for the parser, so a few private names are used:
``AppRunner._make_server`` and ``web.Server._loop``/``_kwargs`` (to build handlers of our
class), ``RequestHandler._parser``/``_read_bufsize`` and ``web_protocol.MAX_MSG_QUEUE_SIZE``
(to replace the parser with the same limits; the last two may be missing). An aiohttp
release that changes them fails tests/adapter/test_raw_target.py. Parsing in Python costs
about 8 µs more per request.
"""

from __future__ import annotations

import asyncio
import re
from http import HTTPStatus
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.helpers import DEFAULT_CHUNK_SIZE
from aiohttp.http_parser import HttpRequestParserPy, RawRequestMessage
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

_HIGH = re.compile(rb"[\x80-\xff]")
# Recent aiohttp releases bound the queue of parsed, unhandled requests; older ones do not.
_QUEUE_SIZE: int | None = getattr(web_protocol, "MAX_MSG_QUEUE_SIZE", None)
_QUEUE_OPTION: dict[str, Any] = {} if _QUEUE_SIZE is None else {"max_msg_queue_size": _QUEUE_SIZE}


def _percent(match: re.Match[bytes]) -> bytes:
    return b"%%%02X" % match[0][0]


class RawTargetParser(HttpRequestParserPy):
    """aiohttp's request parser, taking bytes ≥ 0x80 in the request target as UTF-8."""

    def parse_message(self, lines: list[bytes]) -> RawRequestMessage:
        """Percent-encode the request line's high bytes, then parse as aiohttp does."""
        if lines and not lines[0].isascii():
            lines = [_HIGH.sub(_percent, lines[0]), *lines[1:]]
        return super().parse_message(lines)


class RawTargetHandler(RequestHandler):
    """A connection of the Openqq API: raw UTF-8 targets, CORS on HTTP-layer errors."""

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        auto_decompress: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, loop=loop, auto_decompress=auto_decompress, **kwargs)
        # The same limits as the parser aiohttp built, only the class differs.
        self._parser = RawTargetParser(
            self,
            loop,
            getattr(self, "_read_bufsize", DEFAULT_CHUNK_SIZE),
            max_line_size=self.max_line_size,
            max_field_size=self.max_field_size,
            max_headers=self.max_headers,
            payload_exception=web.RequestPayloadError,
            auto_decompress=auto_decompress,
            **_QUEUE_OPTION,
        )

    def handle_error(
        self,
        request: BaseRequest,
        status: int = HTTPStatus.INTERNAL_SERVER_ERROR,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's error answer (bad request line, headers), readable by a browser page."""
        response = super().handle_error(request, status, exc, message)
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response


class RawTargetServer(web.Server):
    """Makes a RawTargetHandler for each connection."""

    def __call__(self) -> RequestHandler:
        """The protocol of a new connection."""
        return RawTargetHandler(self, loop=self._loop, **self._kwargs)


class RawTargetRunner(web.AppRunner):
    """An AppRunner whose connections are RawTargetHandlers."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return RawTargetServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )
