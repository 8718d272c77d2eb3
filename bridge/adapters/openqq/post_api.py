"""post_api: every message and listed event POSTed to the receiver, durably and in order.

Events wait in a durable queue on the broker (``<ns>.<account>.post_api``, single active
consumer, one in flight) while the receiver is down, and go out in order when it is back.
Each POST is retried with backoff while the receiver is unreachable, times out or answers
5xx, 408 or 429, for at most ``retry_seconds``; then, or at once for any other 4xx, the event
is dead-lettered with the reason. A JSON answer with ``reply`` sends the reply to the
conversation, and ``shutup`` mutes the sender (spec §6.5), as commands on the bus.

Loop guard: replies made from post_api answers are sent with ``from: "code"``, and a
``send_message`` report with ``from: "code"`` never triggers another reply. A receiver that
answers every report with a reply therefore gets one reply per message, not an endless chain.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from bridge.adapters.openqq.jsonfmt import legacy
from bridge.bus.base import Bus, Delivery, Subscription
from bridge.bus.deadletter import dead_letter
from bridge.config import Settings
from bridge.core import commands as c
from bridge.core.events import EVENT_NAMES
from bridge.core.routing import Names
from bridge.errors import PublishFailed

log = logging.getLogger(__name__)

USER_AGENT = "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/37.0.2062"
MAX_ANSWER = 1 << 20
#: Longest pause between two attempts: a receiver that is back gets its events within this.
MAX_BACKOFF = 10.0

Cast = Callable[[c.Command, str], Awaitable[None]]


class Retryable(Exception):
    """The receiver may take it later (down, timeout, 5xx)."""


class Refused(Exception):
    """The receiver refused the event (4xx): retrying will not help."""


def where(url: str) -> str:
    """The URL without query and credentials, for logs (tokens often sit in the query)."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname}{f':{u.port}' if u.port else ''}{u.path}"


def http_headers() -> dict[str, str]:
    """Headers of the original's requests (spec §6.2); no Accept header."""
    return {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"}


class PostApiForwarder:
    """Consumes the post_api queue of one account and POSTs each item."""

    def __init__(
        self,
        bus: Bus,
        names: Names,
        settings: Settings,
        cast: Cast,
        *,
        retry_wait: float = 0.5,
    ) -> None:
        if settings.post_api is None:
            msg = "PostApiForwarder needs the post_api setting"
            raise ValueError(msg)
        self._bus = bus
        self._names = names
        self._account = settings.account
        self.opts = settings
        self.url = settings.post_api
        #: First backoff in seconds; it doubles (with jitter) up to MAX_BACKOFF.
        self.retry_wait = retry_wait
        self._cast = cast
        self.queue = f"{names.prefix}.{settings.account}.post_api"
        self._session: aiohttp.ClientSession | None = None
        self._sub: Subscription | None = None
        self.delivered = 0
        self.dead_lettered = 0

    def selected(self) -> list[str]:
        """Routing keys the queue is bound with."""
        keys = [f"receive_message.*.{self._account}", f"send_message.*.{self._account}"]
        if self.opts.post_event:
            keys += [f"event.{n}.{self._account}" for n in self.opts.post_event_list]
        return keys

    async def start(self) -> None:
        """Declare and bind the durable queue, then start delivering."""
        q = await self._bus.declare_queue(
            self.queue,
            arguments={
                "x-dead-letter-exchange": self._names.dead,
                "x-single-active-consumer": True,
            },
        )
        wanted = set(self.selected())
        for key in wanted:
            await self._bus.bind(q, self._names.events, key)
        # The queue outlives settings: drop bindings of events no longer listed.
        for name in EVENT_NAMES:
            key = f"event.{name}.{self._account}"
            if key not in wanted:
                await self._bus.unbind(q, self._names.events, key)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.opts.post_api_timeout, sock_connect=10),
            headers=http_headers(),
            skip_auto_headers=("Accept",),
        )
        self._sub = await self._bus.consume(q, self._on_delivery, prefetch=1)
        log.info("post_api: reporting to %s from queue %s", where(self.url), self.queue)

    async def stop(self) -> None:
        """Stop consuming (an event being posted goes back to the queue) and close."""
        if self._sub is not None:
            await self._sub.cancel()
            self._sub = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _on_delivery(self, d: Delivery) -> None:
        body = legacy(d.body)
        try:
            ctype, answer = await self._post(body, d)
        except (Retryable, Refused) as exc:
            reason = f"post_api {where(self.url)}: {exc}"
            log.error("%s; %s dead-lettered", reason, d.type or d.routing_key)
            try:
                await dead_letter(self._bus, self._names, d, reason, self.queue)
            except PublishFailed:
                await d.reject(requeue=True)
                return
            self.dead_lettered += 1
            await d.ack()
            return
        self.delivered += 1
        await self._act(d, ctype, answer)
        await d.ack()

    async def _post(self, body: bytes, d: Delivery) -> tuple[str, bytes]:
        assert self._session is not None
        session = self._session

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "post_api %s: %s (attempt %d); %s waits, retrying",
                where(self.url),
                exc,
                state.attempt_number,
                d.type or d.routing_key,
            )

        async for attempt in AsyncRetrying(
            stop=stop_after_delay(self.opts.post_api_retry_seconds),
            wait=wait_exponential_jitter(
                multiplier=self.retry_wait, max=MAX_BACKOFF, jitter=self.retry_wait
            ),
            retry=retry_if_exception_type(Retryable),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                try:
                    async with session.post(
                        self.url,
                        data=body,
                        headers={"Content-Type": "application/json"},
                        max_redirects=7,
                    ) as r:
                        if r.status >= 500 or r.status in (408, 429):
                            msg = f"receiver answered HTTP {r.status}"
                            raise Retryable(msg)
                        if r.status >= 400:
                            msg = f"receiver refused it with HTTP {r.status}"
                            raise Refused(msg)
                        return r.headers.get("Content-Type", ""), await r.content.read(MAX_ANSWER)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    msg = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    raise Retryable(msg) from exc
        raise AssertionError  # unreachable: AsyncRetrying either returns or raises

    async def _act(self, d: Delivery, ctype: str, answer: bytes) -> None:
        if "text/json" not in ctype and "application/json" not in ctype:
            return
        try:
            data = msgspec.json.decode(answer)
            report = msgspec.json.decode(d.body)
        except msgspec.DecodeError:
            log.warning("post_api answer is not JSON; ignored")
            return
        if not isinstance(data, dict) or not isinstance(report, dict):
            return
        for cmd, suffix in commands_for(report, data):
            try:
                await self._cast(cmd, f"{d.message_id or ''}.{suffix}")
            except Exception:
                log.exception("post_api %s of %s could not be sent", suffix, d.type)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)
    return None


def commands_for(report: dict[str, Any], answer: dict[str, Any]) -> list[tuple[c.Command, str]]:
    """The commands a post_api answer asks for (spec §6.5), with their id suffixes."""
    out: list[tuple[c.Command, str]] = []
    post_type, kind = report.get("post_type"), report.get("type")
    reply = _text(answer.get("reply"))
    if post_type == "send_message" and (
        report.get("from") == "code" or answer.get("format", "text") != "text"
    ):
        reply = None  # the loop guard: never answer a reply with a reply
    if post_type not in ("receive_message", "send_message"):
        return out
    peer = "sender_id" if post_type == "receive_message" else "receiver_id"
    if reply:
        cmd: c.Command | None = None
        if kind == "friend_message":
            cmd = c.SendFriendMessage(id=report.get(peer), content=reply, from_="code")
        elif kind == "group_message":
            cmd = c.SendGroupMessage(id=report.get("group_id"), content=reply, from_="code")
        elif kind == "discuss_message":
            cmd = c.SendDiscussMessage(id=report.get("discuss_id"), content=reply, from_="code")
        elif kind == "sess_message":
            cmd = c.SendSessMessage(
                group_id=report.get("group_id"),
                discuss_id=report.get("discuss_id") if "group_id" not in report else None,
                id=report.get(peer),
                content=reply,
                from_="code",
            )
        if cmd is not None:
            out.append((cmd, "reply"))
    shutup = answer.get("shutup")
    if (
        post_type == "receive_message"
        and kind == "group_message"
        and (shutup in (1, "1") or shutup is True)
    ):
        seconds = answer.get("shutup_time", 60)
        seconds = (
            int(seconds)
            if isinstance(seconds, int | float) and not isinstance(seconds, bool)
            else 60
        )
        out.append(
            (
                c.ShutupGroupMember(
                    group_id=report.get("group_id"),
                    member_id=[report["sender_id"]],
                    time=max(0, min(seconds, 30 * 86400)),
                ),
                "shutup",
            )
        )
    return out
