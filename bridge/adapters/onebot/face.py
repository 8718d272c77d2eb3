"""OneBotFace: OneBot v11 for one account, on the bus only (a process role, or inside ``run``).

It serves, on ``onebot_server_listen``: forward WebSocket at ``/`` (universal), ``/api`` and
``/event``, and the HTTP API at ``/<action>`` (GET or POST; query, form or JSON parameters). It
connects to the reverse WebSocket URLs (universal client, ``X-Self-ID``, ``X-Client-Role``,
``Authorization: Bearer``) and POSTs events to the HTTP POST URLs (``X-Self-ID``, and
``X-Signature: sha1=<HMAC-SHA1>`` when a secret is set; quick operations in the answer are
carried out). Every event connection starts with a ``lifecycle`` ``connect`` and gets a
``heartbeat`` every ``heartbeat`` seconds. Events come from one :class:`EventFeed` per bot;
actions go through :class:`Actions`. The account's QQ number (``self_id``) comes from the
contact replica, so nothing is served to bots until the bridge has answered once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import aiohttp
import msgspec
from aiohttp import web

from bridge import __version__
from bridge.adapters.onebot.actions import (
    RETCODE_ASYNC,
    RETCODE_BAD_REQUEST,
    RETCODE_NOT_FOUND,
    ActionError,
    Actions,
    failure,
    reply,
)
from bridge.adapters.onebot.feed import EventFeed, bot_queue_arguments
from bridge.adapters.onebot.translate import MessageIds, heartbeat, lifecycle, to_onebot
from bridge.adapters.openqq.replica import ContactReplica
from bridge.bus.base import Bus, Delivery, Subscription
from bridge.bus.rpc import RpcClient
from bridge.bus.topology import declare_exchanges
from bridge.config import Settings, bot_target, parse_hostport
from bridge.core import cqcode
from bridge.core import events as ev
from bridge.core.codec import decode_event
from bridge.core.members import enc_hook
from bridge.core.routing import Names, valid_name
from bridge.netutil import start_site

log = logging.getLogger(__name__)

ENCODER = msgspec.json.Encoder(enc_hook=enc_hook)
USER_AGENT = f"openqq-bridge/{__version__} OneBot/11"
MAX_FRAME = 4 << 20
#: Seconds a connecting bot waits for the account's QQ number before it is turned away.
READY_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class Target:
    """A reverse WebSocket or HTTP POST target: ``name=URL`` (durable) or ``URL`` (live)."""

    url: str
    bot: str | None


def parse_target(entry: str) -> Target:
    """``nonebot=ws://host/onebot/v11/ws`` -> named; a bare URL is a live-only target."""
    bot, url = bot_target(entry)
    return Target(url, bot)


def token_check(token: str | None, request: web.BaseRequest) -> int | None:
    """None when the request carries the token; else the HTTP status (401 none, 403 wrong)."""
    if not token:
        return None
    given = request.query.get("access_token")
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("bearer", "token") and value:
        given = value.strip()
    if given is None:
        return 401
    return None if hmac.compare_digest(given.encode(), token.encode()) else 403


def signature(secret: str, body: bytes) -> str:
    """The ``X-Signature`` header of an HTTP POST body."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


class OneBotFace:
    """OneBot v11 on top of the bus, for ``opts.account``."""

    def __init__(
        self,
        bus: Bus,
        names: Names,
        opts: Settings,
        *,
        heartbeat_seconds: float = 15.0,
        retry_wait: float = 1.0,
    ) -> None:
        self.bus = bus
        self.names = names
        self.opts = opts
        self.account = opts.account
        self.heartbeat_seconds = heartbeat_seconds
        self.retry_wait = retry_wait
        self.rpc = RpcClient(bus, names)
        self.replica = ContactReplica(self.rpc, opts.account, timeout=opts.rpc_timeout)
        self.ids = MessageIds()
        self.online = False
        self.actions = Actions(
            self.rpc,
            self.replica,
            self.ids,
            opts.account,
            timeout=opts.rpc_timeout,
            online=lambda: self.online,
        )
        self._arguments = bot_queue_arguments(
            opts.onebot_server_queue_max, opts.onebot_server_queue_hours * 3600, opts.queue_type
        )
        self._intake: Subscription | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.bound: tuple[str, int] | None = None
        self.connected = 0

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe, load contacts, listen, start the reverse and HTTP POST clients."""
        await declare_exchanges(self.bus, self.names)
        await self.rpc.start()
        queue = await self.bus.declare_queue("", exclusive=True, auto_delete=True)
        await self.bus.bind(queue, self.names.events, f"*.*.{self.account}")
        self._intake = await self.bus.consume(queue, self._on_event, prefetch=1000)
        self.replica.reload()
        self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        if self.opts.onebot_server_listen:
            host, port = parse_hostport(self.opts.onebot_server_listen, "onebot_server_listen")
            self._runner, self.bound = await start_site(
                self.app(), host, port, "onebot_server_listen", shutdown_timeout=2.0
            )
            log.info(
                "OneBot v11 on ws://%s:%d/ and http://%s:%d/<action> for account %s",
                *self.bound,
                *self.bound,
                self.account,
            )
        for entry in self.opts.onebot_server_reverse:
            target = parse_target(entry)
            if target.bot is not None:
                # Declared now: events from this moment on wait for the bot.
                await self._feed(target.bot).declare()
            self._spawn(self._reverse(target))
        for entry in self.opts.onebot_server_post:
            target = parse_target(entry)
            feed = self._feed(target.bot)
            await feed.declare()
            self._spawn(self._post_feed(feed, target))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Stop serving and connecting; events in flight go back to their queues."""
        self.rpc.abort_pending()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._intake is not None:
            await self._intake.cancel()
            self._intake = None
        if self._session is not None:
            await self._session.close()
        await self.replica.close()
        await self.rpc.close()

    # --- events ------------------------------------------------------------------------
    async def _on_event(self, d: Delivery) -> None:
        await d.ack()
        kind = d.type or ".".join(d.routing_key.split(".")[:2])
        self.replica.on_event(kind, d.body)
        if kind == "event.state_change":
            try:
                event = decode_event(kind, d.body)
            except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
                return
            if isinstance(event, ev.StateChange):
                self.online = event.params[1] == "running"

    @property
    def self_id(self) -> int:
        """The account's QQ number (0 until the contact replica has loaded)."""
        user = self.replica.book.user
        return 0 if user is None else user.uid

    async def _wait_ready(self, timeout: float | None = READY_WAIT) -> bool:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                await self.replica.ready.wait()
        except TimeoutError:
            return False
        if not self.online:
            # The bridge answered the contact reads: it is running.
            self.online = True
        return True

    def render(self, d: Delivery) -> bytes | None:
        """A delivery as the OneBot JSON a bot gets, or None."""
        kind = d.type or ".".join(d.routing_key.split(".")[:2])
        try:
            event = decode_event(kind, d.body)
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
            log.debug("event %s has no OneBot form; skipped", kind)
            return None
        stamp = int(d.timestamp.timestamp()) if d.timestamp else int(time.time())
        out = to_onebot(event, self.self_id, stamp, self.replica.book, self.ids)
        return None if out is None else ENCODER.encode(out)

    def _feed(self, bot: str | None) -> EventFeed:
        return EventFeed(
            self.bus,
            self.names,
            self.account,
            self.render,
            bot=bot,
            arguments=self._arguments,
        )

    # --- actions -----------------------------------------------------------------------
    async def call(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Run one action; the reply frame without echo."""
        try:
            handler, background = self.actions.resolve(action)
            if background:
                self._spawn(self._background(action, handler(params)))
                raise ActionError(RETCODE_ASYNC, "")
            return reply(await handler(params))
        except ActionError as err:
            return failure(err)

    async def _background(self, action: str, work: Any) -> None:
        try:
            await work
        except ActionError as err:
            log.warning("OneBot %s failed: %s (retcode %d)", action, err.wording, err.retcode)

    # --- the server --------------------------------------------------------------------
    def app(self) -> web.Application:
        """The aiohttp application: WebSocket at /, /api, /event; HTTP API at /<action>."""
        app = web.Application(client_max_size=self.opts.max_request_bytes)
        for path, role in (("/", "Universal"), ("/api", "API"), ("/event", "Event")):
            handler = self._ws_handler(role)
            app.router.add_get(path, handler)
            if path != "/":
                app.router.add_get(path + "/", handler)
        app.router.add_route("*", "/{action}", self._http_action)
        app.router.add_route("*", "/{action}/", self._http_action)
        return app

    def _ws_handler(self, role: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            status = token_check(self.opts.onebot_server_token, request)
            if status is not None:
                return web.json_response(
                    {"status": "failed", "retcode": 1400 + status - 400, "data": None},
                    status=status,
                )
            ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=None)
            if not ws.can_prepare(request).ok:
                return web.json_response(
                    {
                        "status": "failed",
                        "retcode": 1400,
                        "data": None,
                        "wording": "this path takes WebSocket connections",
                    },
                    status=400,
                )
            if role != "API" and not await self._wait_ready():
                return web.json_response(
                    {
                        "status": "failed",
                        "retcode": 1400,
                        "data": None,
                        "wording": "the account's bridge has not answered yet; try again",
                    },
                    status=503,
                )
            bot = request.query.get("bot") or None
            if bot is not None and not valid_name(bot):
                return web.json_response(
                    failure(ActionError(RETCODE_BAD_REQUEST, "bot: letters, digits, _ and - only")),
                    status=400,
                )
            # The bot's queue exists before its handshake completes: nothing published after
            # the bot sees the connection open is missed.
            feed = None
            if role != "API":
                feed = self._feed(bot)
                await feed.declare()
            await ws.prepare(request)
            await self._session_loop(_WebSocket(ws), feed)
            return ws

        return handler

    async def _session_loop(self, sock: _Socket, feed: EventFeed | None) -> None:
        """Serve one WebSocket connection (forward or reverse) until it closes."""
        lock = asyncio.Lock()

        async def send(data: bytes) -> None:
            async with lock:
                await sock.send(data.decode())

        beat: asyncio.Task[None] | None = None
        calls: set[asyncio.Task[None]] = set()
        self.connected += 1
        try:
            if feed is not None:
                # Bound before the bot hears "connect": it misses nothing published after.
                await feed.declare()
                await send(ENCODER.encode(lifecycle("connect", self.self_id, int(time.time()))))
                beat = asyncio.get_running_loop().create_task(self._beat(send))
                await feed.start(send)
            async for text in sock.frames():
                task = asyncio.get_running_loop().create_task(self._ws_action(text, send))
                calls.add(task)
                task.add_done_callback(calls.discard)
        finally:
            self.connected -= 1
            if beat is not None:
                beat.cancel()
            if feed is not None:
                await feed.stop()
            for task in calls:
                task.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

    async def _beat(self, send: Any) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            frame = heartbeat(
                self.self_id,
                int(time.time()),
                int(self.heartbeat_seconds * 1000),
                online=self.online,
            )
            try:
                await send(ENCODER.encode(frame))
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                return

    async def _ws_action(self, text: str, send: Any) -> None:
        try:
            frame = msgspec.json.decode(text)
        except msgspec.DecodeError:
            frame = None
        if not isinstance(frame, dict) or not isinstance(frame.get("action"), str):
            out = failure(ActionError(RETCODE_BAD_REQUEST, "not a JSON {action, params, echo}"))
            if isinstance(frame, dict) and "echo" in frame:
                out["echo"] = frame["echo"]
        else:
            params = frame.get("params") or {}
            if not isinstance(params, dict):
                out = failure(ActionError(RETCODE_BAD_REQUEST, "params must be an object"))
            else:
                out = await self.call(frame["action"], params)
            if "echo" in frame:
                out["echo"] = frame["echo"]
        try:
            await send(ENCODER.encode(out))
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            log.info("OneBot reply to %s not sent: %s", frame and frame.get("action"), exc)

    async def _http_action(self, request: web.Request) -> web.StreamResponse:
        status = token_check(self.opts.onebot_server_token, request)
        if status is not None:
            return web.json_response(
                {"status": "failed", "retcode": 1000 + status, "data": None}, status=status
            )
        if request.method not in ("GET", "POST"):
            return web.json_response(
                {"status": "failed", "retcode": 1405, "data": None}, status=405
            )
        params: dict[str, Any] = dict(request.query)
        params.pop("access_token", None)
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = msgspec.json.decode(await request.read())
                except msgspec.DecodeError:
                    body = None
                if not isinstance(body, dict):
                    return web.json_response(
                        failure(ActionError(RETCODE_BAD_REQUEST, "the body is not a JSON object")),
                        status=400,
                    )
                params.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                params.update(
                    {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
                )
            else:
                return web.json_response(
                    failure(ActionError(406, f"Content-Type {ctype} is not supported")),
                    status=406,
                )
        out = await self.call(request.match_info["action"], params)
        http_status = 404 if out["retcode"] == RETCODE_NOT_FOUND else 200
        return web.json_response(
            out, status=http_status, dumps=lambda o: ENCODER.encode(o).decode()
        )

    # --- reverse WebSocket -------------------------------------------------------------
    async def _reverse(self, target: Target) -> None:
        await self._wait_ready(None)
        assert self._session is not None
        failures = 0
        while True:
            headers = {
                "X-Self-ID": str(self.self_id),
                "X-Client-Role": "Universal",
            }
            if self.opts.onebot_server_token:
                headers["Authorization"] = f"Bearer {self.opts.onebot_server_token}"
            try:
                async with self._session.ws_connect(
                    target.url,
                    headers=headers,
                    max_msg_size=MAX_FRAME,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5),
                ) as ws:
                    failures = 0
                    log.info("reverse WebSocket to %s connected", _where(target.url))
                    await self._session_loop(_WebSocket(ws), self._feed(target.bot))
                    log.info("reverse WebSocket to %s closed", _where(target.url))
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                if failures == 0:
                    log.warning(
                        "reverse WebSocket to %s failed: %s; retrying",
                        _where(target.url),
                        str(exc) or type(exc).__name__,
                    )
                failures += 1
            await asyncio.sleep(_backoff(self.retry_wait, failures))

    # --- HTTP POST ---------------------------------------------------------------------
    async def _post_feed(self, feed: EventFeed, target: Target) -> None:
        await self._wait_ready(None)
        await feed.start(partial(self._post, target))
        try:
            await asyncio.Event().wait()
        finally:
            await feed.stop()

    async def _post(self, target: Target, data: bytes) -> None:
        """POST one event until the receiver answers 2xx (waiting while it is down)."""
        assert self._session is not None
        headers = {"Content-Type": "application/json", "X-Self-ID": str(self.self_id)}
        if self.opts.onebot_server_secret:
            headers["X-Signature"] = signature(self.opts.onebot_server_secret, data)
        failures = 0
        status, answer = 0, b""
        while True:
            try:
                async with self._session.post(
                    target.url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=30)
                ) as r:
                    status, answer = r.status, await r.read()
                    if 200 <= status < 300:
                        break
                    problem = f"HTTP {status}"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                problem = str(exc) or type(exc).__name__
            if failures == 0:
                log.warning("HTTP POST to %s failed: %s; retrying", _where(target.url), problem)
            failures += 1
            await asyncio.sleep(_backoff(self.retry_wait, failures))
        if status != 204 and answer.strip():
            await self._quick(data, answer)

    async def _quick(self, event_bytes: bytes, answer: bytes) -> None:
        """Carry out the quick operation an HTTP POST receiver answered (reply, ban, kick)."""
        try:
            op = msgspec.json.decode(answer)
        except msgspec.DecodeError:
            return
        if not isinstance(op, dict) or not op:
            return
        event = msgspec.json.decode(event_bytes)
        if event.get("post_type") != "message":
            if op:
                log.info("quick operation on %s is not carried by the bus", event.get("post_type"))
            return
        group = event.get("message_type") == "group"
        if op.get("reply") not in (None, ""):
            message: Any = op["reply"]
            if isinstance(message, str):
                message = (
                    [{"type": "text", "data": {"text": message}}]
                    if op.get("auto_escape")
                    else [{"type": s.type, "data": s.data} for s in cqcode.decode(message)]
                )
            if group and op.get("at_sender", True) and isinstance(message, list):
                at = {"type": "at", "data": {"qq": str(event.get("user_id"))}}
                message = [at, *message]
            params = {
                "message": message,
                "message_type": event.get("message_type"),
                "user_id": event.get("user_id"),
                "group_id": event.get("group_id"),
            }
            out = await self.call("send_msg", params)
            if out["retcode"] != 0:
                log.warning("quick reply not sent: %s", out["wording"])
        if group and op.get("kick"):
            await self.call(
                "set_group_kick",
                {"group_id": event.get("group_id"), "user_id": event.get("user_id")},
            )
        elif group and op.get("ban"):
            await self.call(
                "set_group_ban",
                {
                    "group_id": event.get("group_id"),
                    "user_id": event.get("user_id"),
                    "duration": op.get("ban_duration", 30 * 60),
                },
            )


def _backoff(base: float, failures: int) -> float:
    """Jittered exponential backoff, at most 30 s."""
    return float(min(30.0, base * 2 ** min(failures, 6)) * (0.5 + random.random() / 2))


def _where(url: str) -> str:
    """A URL for logs: no query (tokens), no credentials."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.split('?', 1)[0].rpartition('@')[2]}"


class _Socket(Protocol):
    """What a session needs from a WebSocket, server or client side."""

    async def send(self, text: str) -> None:
        """Send one text frame; ConnectionError when the socket is closed."""

    def frames(self) -> AsyncIterator[str]:
        """The text frames received, until the socket closes."""
        ...


class _WebSocket:
    """A server or client WebSocket as a :class:`_Socket` (both have the same calls)."""

    def __init__(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def send(self, text: str) -> None:
        if self._ws.closed:
            raise ConnectionError("the bot closed the WebSocket")
        await self._ws.send_str(text)

    async def frames(self) -> AsyncIterator[str]:
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                yield msg.data
            elif msg.type == aiohttp.WSMsgType.ERROR:
                return
