"""The ``/openqq/*`` HTTP API on the bus (reference/openqq-spec.md §1-§5).

Transport rules apply to every request: parameters from query and form bodies; the access
token checked first (also for OPTIONS and unknown paths); OPTIONS preflight; ``api not found``
(403) for unknown paths and methods; ``Access-Control-Allow-Origin: *`` on every response;
JSON errors with HTTP 200; JSONP with ``datatype=jsonp``. Sends, kicks, mutes and control go
to the bridge as commands (RPC); reads and async lookups are served from the contact replica.
Where the original hangs or crashes, the answer is a clear JSON error (README lists each).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from bridge.adapters.openqq.check_event import EventBuffer
from bridge.adapters.openqq.jsonfmt import dumps, legacy
from bridge.adapters.openqq.params import BadRequest, Params, TooLarge, last, read_params
from bridge.adapters.openqq.replica import ContactReplica
from bridge.adapters.openqq.routes import AUTH_FAILURE, JSON, ROUTES, Answer
from bridge.bus.rpc import MaybeSent, ReplyLost, RpcClient
from bridge.config import Settings
from bridge.core import commands as c
from bridge.errors import NoRoute, PublishFailed, RpcTimeout
from bridge.metrics import OFF, Metrics
from bridge.status import Observer

log = logging.getLogger(__name__)

HTML = "text/html;charset=UTF-8"
#: Code of an adapter-side failure: the bridge did not answer or is not there.
CODE_BRIDGE_UNAVAILABLE = -7
_PATH = re.compile(r"/openqq/([a-z_]+)(?:\.[A-Za-z0-9]+)?/?")
_CALLBACK = re.compile(r"[A-Za-z_$][0-9A-Za-z_$.]{0,127}")


def _jsonp(params: Params) -> tuple[bytes, bytes]:
    """What goes before and after the JSON: ``callback(`` and ``)`` for JSONP, else nothing."""
    if last(params, "datatype") != "jsonp":
        return b"", b""
    callback = last(params, "callback") or ""
    # The original inserts the callback unescaped; only a JS name is let through.
    if not _CALLBACK.fullmatch(callback):
        callback = f"jsoncallback{int(time.time())}"
    return callback.encode() + b"(", b")"


async def _stream(
    request: web.Request, params: Params, answer: Answer, items: Sequence[object]
) -> web.StreamResponse:
    """Write a JSON array an item at a time: the same bytes as the whole, bounded memory.

    Without a length the response is chunked (HTTP/1.1) or ends with the connection
    (HTTP/1.0); each write waits while the client is slow to read, so at most about one
    item's JSON is held beyond the book. ``items`` is a snapshot of references to objects
    that are replaced, never changed, when the book changes.
    """
    before, after = _jsonp(params)
    response = web.StreamResponse(
        status=answer.status, headers={"Content-Type": answer.content_type}
    )
    await response.prepare(request)
    await response.write(before + b"[")
    for i, item in enumerate(items):
        await response.write(b"," + dumps(item) if i else dumps(item))
    await response.write(b"]" + after)
    await response.write_eof()
    return response


CORS_PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "OPTIONS, HEAD, GET, POST",
    "Access-Control-Allow-Headers": (
        "X-Requested-With, X-Auth-Token, Content-Type, Content-Length, Authorization"
    ),
}


class OpenqqApi:
    """Request handling; one per adapter (implements context.ApiContext for the handlers)."""

    def __init__(
        self,
        rpc: RpcClient,
        replica: ContactReplica,
        buffer: EventBuffer,
        options: Settings,
        *,
        observer: Observer | None = None,
        metrics: Metrics = OFF,
    ) -> None:
        self.rpc = rpc
        self.replica = replica
        self.buffer = buffer
        self.opts = options
        self.observer = observer
        self._metrics = metrics

    # --- transport ------------------------------------------------------------------------
    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(client_max_size=self.opts.max_request_bytes)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_response_prepare.append(_cors)
        return app

    def _authorized(self, params: Params, request: web.Request) -> bool:
        return authorized(self.opts.access_token, params, request)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Every request, counted by route name and status code."""
        response: web.StreamResponse
        if self.observer is not None and request.path in Observer.PATHS:
            endpoint = request.path[1:]
            response = await self._observe(request, self.observer)
        else:
            response, endpoint = await self._dispatch(request)
        m = self._metrics
        m.child(m.http_requests, self.opts.account, endpoint, str(response.status)).inc()
        return response

    async def _observe(self, request: web.Request, observer: Observer) -> web.Response:
        """/healthz, /readyz (no token), /metrics and /status (the token, if one is set)."""
        if request.path not in Observer.OPEN:
            try:
                params = await read_params(request, max_bytes=self.opts.max_request_bytes)
            except BadRequest as exc:
                return web.Response(status=400, text=f"{exc}\n")
            if not self._authorized(params, request):
                log.warning("auth failure from %s on %s", request.remote, request.path)
                return web.Response(status=403, text="auth failure\n")
        return await observer.handle(request)

    async def _dispatch(self, request: web.Request) -> tuple[web.StreamResponse, str]:
        """Parameters, auth, OPTIONS, routing, JSONP; the answer and the route's name."""
        try:
            params = await read_params(request, max_bytes=self.opts.max_request_bytes)
        except BadRequest as exc:
            code = 413 if isinstance(exc, TooLarge) else 400
            response = web.Response(
                status=code,
                body=dumps(c.StatusReply(code=code, status=str(exc))),
                headers={"Content-Type": JSON, "Connection": "close"},
            )
            return response, "unknown"
        match = _PATH.fullmatch(request.path)
        entry = ROUTES.get(match.group(1)) if match else None
        # A bounded label: a route's name, every other path is "unknown".
        endpoint = match.group(1) if match and entry is not None else "unknown"
        if not self._authorized(params, request):
            log.warning("auth failure from %s on %s", request.remote, request.path)
            return self._render(params, Answer(AUTH_FAILURE)), endpoint
        if request.method == "OPTIONS":
            return web.Response(status=200, headers=CORS_PREFLIGHT), endpoint
        if request.path == "/":
            answer = Answer(b"Page not found", HTML, 404)
        elif entry is None or request.method not in entry[0]:
            answer = Answer(b"api not found", HTML, 403)
        else:
            answer = await entry[1](self, params, request)
        if answer.items is not None:
            if request.method != "HEAD":
                return await _stream(request, params, answer, answer.items), endpoint
            answer = Answer(dumps(answer.items), answer.content_type, answer.status)
        return self._render(params, answer), endpoint

    @staticmethod
    def _render(params: Params, answer: Answer) -> web.Response:
        before, after = _jsonp(params)
        return web.Response(
            status=answer.status,
            body=before + answer.body + after if before else answer.body,
            headers={"Content-Type": answer.content_type},
        )

    # --- calls to the bridge --------------------------------------------------------------
    async def call(self, cmd: c.Command) -> bytes:
        """The legacy bytes of the bridge's reply, or an error reply of the right shape.

        A command that was sent but got no reply may still run (until its expiration, the
        caller's wait): a send then answers 发送结果未知, never 发送失败. While the adapter's
        broker connection is down the call waits for it (within ``rpc_timeout``); only a
        command that surely never left (no route, or the broker away the whole time) fails.
        """
        timeout = self.opts.rpc_timeout
        try:
            return legacy(await self.rpc.call(self.opts.account, cmd, timeout=timeout))
        except (RpcTimeout, ReplyLost) as exc:
            reason = (
                f"no answer from the bridge within {timeout:g}s"
                if isinstance(exc, RpcTimeout)
                else "the adapter stopped before the bridge answered"
            ) + (
                f"; result unknown: it may still be sent if a bridge takes it within {timeout:g}s"
                " of the request, else it is dropped"
            )
            log.warning("%s for account %s: %s", c.command_name(cmd), self.opts.account, reason)
            if cmd.QUEUE == "send":
                return dumps(c.unknown_reply(cmd, reason))
            return dumps(c.StatusReply(code=CODE_BRIDGE_UNAVAILABLE, status=reason))
        except (NoRoute, PublishFailed, ConnectionError) as exc:
            reason = f"bridge unavailable: {exc}"
            log.warning("%s for account %s: %s", c.command_name(cmd), self.opts.account, reason)
            if cmd.QUEUE == "send":
                return dumps(c.send_failure(reason))
            return dumps(c.StatusReply(code=CODE_BRIDGE_UNAVAILABLE, status=reason))

    async def cast(self, cmd: c.Command) -> bytes | None:
        """Send without waiting for the bridge; an error reply when it cannot be handed over.

        Waits up to ``rpc_timeout`` for a broker connection that is down.
        """
        timeout = self.opts.rpc_timeout
        try:
            await self.rpc.cast(self.opts.account, cmd, timeout=timeout)
        except (MaybeSent, ReplyLost) as exc:
            reason = f"{exc}; result unknown: it may still be sent"
            log.warning("%s for account %s: %s", c.command_name(cmd), self.opts.account, reason)
            return dumps(c.unknown_reply(cmd, reason))
        except (NoRoute, PublishFailed, ConnectionError) as exc:
            return dumps(c.send_failure(f"bridge unavailable: {exc}"))
        return None

    async def group_exists(self, crit: dict[str, Any]) -> bool:
        """Whether the group exists (replica, else the bridge), to order error answers."""
        if self.replica.ready.is_set():
            return self.replica.book.find_group(**crit) is not None
        found = await self.call(c.SearchGroup(**crit))
        return found.startswith(b"[")


def authorized(token: str | None, params: Params, request: web.Request) -> bool:
    """Whether the request carries the access token (always, when there is none)."""
    if not token:
        return True
    given = last(params, "access_token")
    header = request.headers.get("Authorization", "")
    if given is None and header[:7].lower() == "bearer ":
        given = header[7:].strip()
    # Constant time: a timing difference must not reveal a prefix of the token.
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


async def _cors(_request: web.Request, response: web.StreamResponse) -> None:
    # On every response, aiohttp's own errors (413, 400) included.
    response.headers["Access-Control-Allow-Origin"] = "*"
