"""The WebSocket to a OneBot v11 implementation: open it, read it, call actions over it.

:class:`Connector` hands out one :class:`Link` after another: forward (the bridge dials
``url``, the token as ``Authorization: Bearer``) or reverse (the implementation dials the
bridge; token, ``X-Client-Role`` and ``X-Self-ID`` are checked). Between links it backs off,
jittered and capped, unless the previous link reached ``running`` (:meth:`Connector.ran`), so
a link that keeps failing early (handshake refused, token rejected, contacts that never load)
is retried slowly instead of in a tight loop.

A :class:`Link` reads frames: answers go to the action waiting on their ``echo``, meta events
to a callback, other events into a bounded queue. A frame that cannot be decoded is counted
and logged (at most once per ``BAD_FRAME_LOG_SECONDS``), and the link goes on. A heartbeat
watchdog closes a link that went silent for several of the implementation's own intervals.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from bridge.core.codec import encode
from bridge.netutil import start_site
from bridge.upstream.onebot.errors import (
    ActionTimeout,
    BadFrame,
    ConnectFailed,
    ConnectionLost,
    NotConnected,
    OneBotActionFailed,
    TokenRejected,
)
from bridge.upstream.onebot.frames import (
    Frame,
    OBMeta,
    OBReply,
    convert,
    decode_frame,
    parse_event,
)
from bridge.upstream.onebot.settings import OneBotSettings

log = logging.getLogger(__name__)

#: Events read from the implementation but not yet handed to the bridge, at most.
EVENT_BACKLOG = 10_000
#: Undecodable frames are logged at most once in this many seconds (they are all counted).
BAD_FRAME_LOG_SECONDS = 10.0
#: Retcodes and words with which NapCat and LLOneBot refuse a token after accepting the socket.
TOKEN_RETCODES = (1403,)
TOKEN_WORDS = ("token",)

WebSocket = aiohttp.ClientWebSocketResponse | web.WebSocketResponse


def token_hint(detail: str) -> str:
    """The one log line for a refused token, whichever way the implementation said it."""
    return f"it rejected the access token ({detail}); check OPENQQ_ONEBOT_TOKEN"


class Backoff:
    """Exponential back-off with full jitter, capped; reset once a link reached ``running``.

    Written out rather than tenacity's wait strategy because the failures it spaces out come
    from two places (dialling and a session that ended before ``running``), not one call.
    """

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt (grows with each failure in a row)."""
        ceiling = min(self.cap, self.first * 2**self.failures)
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)  # jitter, not secrets

    def reset(self) -> None:
        """The last attempt worked: start again from ``first``."""
        self.failures = 0


class Link:
    """One open WebSocket to the implementation."""

    def __init__(
        self,
        ws: WebSocket,
        settings: OneBotSettings,
        on_meta: Callable[[OBMeta], None],
        session: aiohttp.ClientSession | None = None,
        self_id: int = 0,
    ) -> None:
        self.ws = ws
        self.settings = settings
        self.on_meta = on_meta
        self.session = session
        #: The QQ number the reverse handshake announced (X-Self-ID), 0 in forward mode.
        self.self_id = self_id
        self.events: asyncio.Queue[Frame] = asyncio.Queue(EVENT_BACKLOG)
        self.heartbeat_ms = 0
        self.last_frame = time.monotonic()
        #: Why the implementation closed the link, when it said so (a refused token).
        self.refused: TokenRejected | None = None
        #: The account's QQ number once known: event frames of another account are dropped.
        self.pinned = 0
        self._pending: dict[str, asyncio.Future[OBReply]] = {}
        self._echo = itertools.count(1)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def closed(self) -> bool:
        """True once the socket is closed."""
        return self.ws.closed

    async def call(self, action: str, params: dict[str, Any], wait: float | None = None) -> Any:
        """Run an action and return its ``data``; raises on failure, timeout or a lost link.

        ``wait``: seconds to wait for the answer (default: the action timeout).
        """
        if self.ws.closed:
            msg = "not connected to OneBot"
            raise NotConnected(msg)
        echo = str(next(self._echo))
        fut: asyncio.Future[OBReply] = asyncio.get_running_loop().create_future()
        self._pending[echo] = fut
        timeout = wait or self.settings.action_timeout
        try:
            # Text frames: go-cqhttp and its descendants ignore binary ones.
            await self.ws.send_str(
                encode({"action": action, "params": params, "echo": echo}).decode()
            )
            async with asyncio.timeout(timeout):
                reply = await fut
        except TimeoutError as exc:
            msg = f"{action}: no answer from OneBot within {timeout:g}s"
            raise ActionTimeout(msg) from exc
        except ConnectionResetError as exc:
            msg = f"{action}: connection to OneBot lost"
            raise ConnectionLost(msg) from exc
        finally:
            self._pending.pop(echo, None)
        if reply.status == "failed" or reply.retcode not in (0, 1):
            raise OneBotActionFailed(
                action, reply.retcode, reply.wording or reply.message or reply.msg
            )
        return reply.data

    async def read(self, counters: FrameCounters) -> None:
        """Read until the socket closes; route every frame."""
        async for msg in self.ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            self.last_frame = time.monotonic()
            try:
                obj = decode_frame(msg.data)
                if "post_type" not in obj and ("echo" in obj or "retcode" in obj):
                    self._answer(convert(obj, OBReply))
                    continue
                frame = parse_event(obj)
            except BadFrame as exc:
                counters.bad(str(exc))
                continue
            if self.pinned and frame.self_id and frame.self_id != self.pinned:
                counters.bad(f"an event of QQ {frame.self_id}, not of {self.pinned}")
                continue
            if isinstance(frame, OBMeta):
                if frame.meta_event_type == "heartbeat" and frame.interval > 0:
                    self.heartbeat_ms = frame.interval
                self.on_meta(frame)
                # Whether the account is online is an event in order with the others.
                if frame.status is None or frame.status.online is None:
                    continue
            await self.events.put(frame)

    def _answer(self, reply: OBReply) -> None:
        fut = self._pending.get(str(reply.echo)) if reply.echo is not None else None
        if fut is not None and not fut.done():
            fut.set_result(reply)
            return
        wording = reply.wording or reply.message or reply.msg
        # NapCat and LLOneBot accept the socket with a wrong token, then say so in a frame
        # that answers no action, and close.
        if reply.retcode in TOKEN_RETCODES or any(w in wording.lower() for w in TOKEN_WORDS):
            self.refused = TokenRejected(token_hint(f"retcode {reply.retcode}: {wording}"))

    async def watchdog(self) -> None:
        """Close the link when it stays silent for ``heartbeat_misses`` announced intervals."""
        while not self.ws.closed:
            await asyncio.sleep(0.5)
            if self.heartbeat_ms <= 0:
                continue
            limit = self.settings.heartbeat_misses * self.heartbeat_ms / 1000
            if time.monotonic() - self.last_frame > limit:
                log.warning("OneBot silent for %.0fs (no heartbeat); reconnecting", limit)
                await self.ws.close()
                return

    async def close(self) -> None:
        """Fail every waiting action, close the socket (and its client session)."""
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost("connection to OneBot lost"))
        self._pending.clear()
        await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if not self.done.done():
            self.done.set_result(None)


class FrameCounters:
    """Frames that could not be used, counted; logged at most once per interval."""

    def __init__(self) -> None:
        self.bad_frames = 0
        self._logged_at = -BAD_FRAME_LOG_SECONDS
        self._since_log = 0

    def bad(self, why: str) -> None:
        """Count one undecodable frame; log now and then."""
        self.bad_frames += 1
        self._since_log += 1
        now = time.monotonic()
        if now - self._logged_at >= BAD_FRAME_LOG_SECONDS:
            log.warning(
                "OneBot sent %d frame(s) that cannot be used, ignored (latest: %s)",
                self._since_log,
                why[:200],
            )
            self._logged_at = now
            self._since_log = 0


class Connector:
    """Hands out links, forward or reverse, backing off between links that failed early."""

    def __init__(self, settings: OneBotSettings, on_meta: Callable[[OBMeta], None]) -> None:
        self.settings = settings
        self.on_meta = on_meta
        self.backoff = Backoff(settings.reconnect_first, settings.reconnect_max)
        self._incoming: asyncio.Queue[Link] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        #: The link being served, if any.
        self.current: Link | None = None
        #: Where the reverse WebSocket server listens, once it does.
        self.bound: tuple[str, int] | None = None
        #: The QQ number served: the setting, else the first account that logged in.
        self.pinned = settings.self_id

    async def start(self) -> None:
        """In reverse mode, start listening."""
        if self.settings.mode != "reverse":
            return
        host, port = self.settings.listen
        app = web.Application()
        path = self.settings.path.rstrip("/") or "/"
        app.router.add_get(path, self._accept)
        if path != "/":
            app.router.add_get(path + "/", self._accept)
        self._runner, self.bound = await start_site(app, host, port, "onebot_listen")
        log.info("waiting for OneBot to connect to ws://%s:%d%s", *self.bound, path)

    async def close(self) -> None:
        """Stop listening (reverse mode)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ran(self) -> None:
        """The current link reached ``running``: the next one is not delayed."""
        self.backoff.reset()

    async def next_link(self) -> Link:
        """The next link (waits for the implementation in reverse mode)."""
        if self.settings.mode == "reverse":
            return await self._incoming.get()
        while True:
            try:
                return await self._dial()
            except ConnectFailed as exc:
                delay = self.backoff.next_delay()
                log.log(
                    logging.ERROR if isinstance(exc, TokenRejected) else logging.WARNING,
                    "OneBot at %s: %s; retrying in %.1fs",
                    self.settings.url,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)

    async def pause(self, why: str, *, error: bool = False) -> None:
        """Back off after a link that ended before ``running`` (``error``: logged as one)."""
        delay = self.backoff.next_delay()
        log.log(
            logging.ERROR if error else logging.WARNING,
            "OneBot connection ended before running: %s; retrying in %.1fs",
            why,
            delay,
        )
        await asyncio.sleep(delay)

    async def _dial(self) -> Link:
        headers = {}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(
                self.settings.url,
                headers=headers,
                heartbeat=30,
                timeout=aiohttp.ClientWSTimeout(ws_close=5),
                max_msg_size=64 << 20,
            )
        except aiohttp.WSServerHandshakeError as exc:
            await session.close()
            if exc.status in (401, 403):
                raise TokenRejected(token_hint(f"HTTP {exc.status}")) from exc
            msg = f"handshake refused (HTTP {exc.status})"
            raise ConnectFailed(msg) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await session.close()
            msg = f"cannot connect: {str(exc) or type(exc).__name__}"
            raise ConnectFailed(msg) from exc
        link = Link(ws, self.settings, self.on_meta, session=session)
        link.pinned = self.pinned
        return link

    # --- reverse WebSocket -------------------------------------------------------------------
    def _token_ok(self, request: web.Request) -> bool:
        token = self.settings.token
        if not token:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            given = request.query.get("access_token", "")
        return hmac.compare_digest(given.strip().encode(), token.encode())

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        if not self._token_ok(request):
            status = (
                401
                if "Authorization" not in request.headers and "access_token" not in request.query
                else 403
            )
            log.error("OneBot connection from %s refused: wrong access token", request.remote)
            return web.Response(status=status, text="access token missing or wrong")
        role = request.headers.get("X-Client-Role", "Universal")
        if role.lower() != "universal":
            log.error("OneBot connection with X-Client-Role %s refused: use Universal", role)
            return web.Response(status=400, text="X-Client-Role must be Universal")
        self_id = request.headers.get("X-Self-ID", "")
        if not self_id.isdigit():
            return web.Response(status=400, text="X-Self-ID missing")
        if self.pinned and int(self_id) != self.pinned:
            log.error(
                "OneBot connection from %s for QQ %s refused: this bridge serves QQ %s"
                " (run one bridge account per QQ account)",
                request.remote,
                self_id,
                self.pinned,
            )
            return web.Response(status=403, text=f"this endpoint serves QQ {self.pinned}")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 << 20)
        await ws.prepare(request)
        if self.current is not None:
            log.warning("a new OneBot connection replaces the current one")
            await self.current.ws.close()
        link = Link(ws, self.settings, self.on_meta, self_id=int(self_id))
        link.pinned = self.pinned
        await self._incoming.put(link)
        await link.done
        return ws
