"""post_api: every message and listed event is POSTed to the receiver, durably and in order.

Events wait in a durable queue on the broker (``<ns>.<account>.post_api``, single active
consumer, one in flight) while the receiver is down, and go out in order when it is back.
With ``queue_type = quorum`` it is a quorum queue, replicated across the cluster's nodes:
the loss of one node loses none of the reports waiting in it.
Two kinds of failure are told apart (README, "post_api"):

- the receiver is *down*: unreachable, the request timed out, or it answered 502, 503, 504
  (a proxy or the server says "not now"), 408 or 429 (it asks to be asked again). Nothing is
  lost and order is kept: the same report is retried with backoff for
  ``post_api_retry_seconds``, every later report waiting behind it; then it is dead-lettered.
- the receiver *rejects this report*: any other HTTP error (500, 501, 4xx, too many
  redirects). Its handler failed on this report, which retrying rarely fixes: it gets
  ``post_api_reject_retries`` quick retries, then is dead-lettered with the reason (header
  ``x-openqq-reason``) and the next report goes out.

A JSON answer with ``reply`` sends the reply to the conversation, and ``shutup`` mutes the
sender (spec §6.5), as commands on the bus.

Loop guard: replies made from post_api answers are sent with ``from: "code"``, and a
``send_message`` report with ``from: "code"`` never triggers another reply. A receiver that
answers every report with a reply therefore gets one reply per message, not an endless chain.

Stopping: no new report is taken, the one being posted gets ``STOP_GRACE`` seconds to finish
(it is not retried any more), then goes back to the queue. Before a ``run`` process exits,
:meth:`PostApiForwarder.drain` posts the reports of the stop itself (``state_change`` to stop,
``stop``), bounded by ``DRAIN_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from bridge.adapters.openqq.jsonfmt import legacy
from bridge.bus.base import REASON_HEADER, Bus, Delivery, Subscription
from bridge.bus.deadletter import dead_letter
from bridge.bus.topology import post_api_queue_arguments
from bridge.config import Settings
from bridge.core import commands as c
from bridge.core.events import EVENT_NAMES
from bridge.core.routing import Names, topic_matches
from bridge.errors import PublishFailed
from bridge.metrics import OFF, Metrics

log = logging.getLogger(__name__)

USER_AGENT = "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/37.0.2062"
MAX_ANSWER = 1 << 20
#: Longest pause between two attempts: a receiver that is back gets its events within this.
MAX_BACKOFF = 10.0
#: HTTP answers that mean "the receiver is down or busy, ask again": retried in order.
DOWN_STATUSES = frozenset({408, 429, 502, 503, 504})
#: Seconds the report being posted gets to finish when the forwarder stops.
STOP_GRACE = 5.0
#: Seconds a stopping ``run`` process waits for the reports of its own stop to be posted.
DRAIN_SECONDS = 5.0
#: Message ids of settled reports remembered for drain().
_REMEMBERED = 4096

Cast = Callable[[c.Command, str], Awaitable[None]]


class Unreachable(Exception):
    """The receiver is down, busy or slow: the report is kept and retried in order."""


class Rejected(Exception):
    """The receiver answered this report with an error: a few retries, then dead-lettered."""


class _Stopping(Exception):
    """The forwarder stops: the report goes back to the queue instead of being retried."""


def where(url: str) -> str:
    """The URL without query and credentials, for logs (tokens often sit in the query)."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname}{f':{u.port}' if u.port else ''}{u.path}"


def http_headers() -> dict[str, str]:
    """Headers of the original's requests (spec §6.2); no Accept header."""
    return {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"}


def verdict(status: int) -> type[Exception] | None:
    """None for a success, else which failure an HTTP status is (see the module doc)."""
    if status < 400:
        return None
    return Unreachable if status in DOWN_STATUSES else Rejected


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
        metrics: Metrics = OFF,
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
        self._current: asyncio.Task[Any] | None = None
        self._stopping = asyncio.Event()
        self._settled: deque[str] = deque(maxlen=_REMEMBERED)
        self._progress = asyncio.Event()
        self.delivered = 0
        self.dead_lettered = 0
        self._delivered = metrics.post_api_deliveries.labels(settings.account, "delivered")
        self._dead = metrics.post_api_deliveries.labels(settings.account, "dead_lettered")
        self._retries = metrics.post_api_retries.labels(settings.account)

    def selected(self) -> list[str]:
        """Routing keys the queue is bound with."""
        keys = [f"receive_message.*.{self._account}", f"send_message.*.{self._account}"]
        if self.opts.post_event:
            keys += [f"event.{n}.{self._account}" for n in self.opts.post_event_list]
        return keys

    async def start(self) -> None:
        """Declare and bind the durable queue, then start delivering."""
        q = await self._bus.declare_queue(
            self.queue, arguments=post_api_queue_arguments(self._names, self.opts.queue_type)
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

    async def drain(
        self,
        reports: Iterable[tuple[str, str]],
        timeout: float = DRAIN_SECONDS,  # noqa: ASYNC109 - a bound, not a request deadline
    ) -> int:
        """Wait until the given (routing key, message id) events are posted; how many are not.

        Events this queue is not bound for are skipped. Bounded by ``timeout``: a receiver
        that is down keeps them waiting in the queue for the next consumer.
        """
        keys = self.selected()
        wanted = {mid for key, mid in reports if any(topic_matches(k, key) for k in keys)}
        try:
            async with asyncio.timeout(timeout):
                while wanted - set(self._settled):
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            left = len(wanted - set(self._settled))
            log.warning(
                "post_api %s: %d report(s) of the stop not posted within %gs; they stay in"
                " queue %s for the next adapter (the embedded bus keeps nothing)",
                where(self.url),
                left,
                timeout,
                self.queue,
            )
            return left
        return 0

    async def stop(self) -> None:
        """Take no new report, let the one being posted finish (bounded), cancel, close."""
        self._stopping.set()
        current = self._current
        if current is not None and not current.done():
            _, pending = await asyncio.wait([current], timeout=STOP_GRACE)
            if pending:
                log.warning(
                    "post_api %s: a report still posting after %gs at stop; it goes back to"
                    " queue %s and may reach the receiver twice",
                    where(self.url),
                    STOP_GRACE,
                    self.queue,
                )
                current.cancel()
                await asyncio.wait([current])
        # Only now: cancelling gives the unsettled report back to the broker.
        if self._sub is not None:
            await self._sub.cancel()
            self._sub = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _on_delivery(self, d: Delivery) -> None:
        if self._stopping.is_set():
            return  # left unsettled: the broker takes it back when the consumer is cancelled
        self._current = asyncio.current_task()
        try:
            await self._forward(d)
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
            # stop() gave up waiting: the report goes back to the queue unsettled.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            self._current = None

    async def _forward(self, d: Delivery) -> None:
        # Which report, in every log line about it: its kind and its message_id (the id a
        # consumer of the dead-letter queue or of the events exchange finds it by).
        what = f"{d.type or d.routing_key} report {d.message_id or '(no message_id)'}"
        try:
            ctype, answer = await self._post(legacy(d.body), what)
        except _Stopping:
            return
        except (Unreachable, Rejected) as exc:
            url = where(self.url)
            if isinstance(exc, Rejected):
                attempts = self.opts.post_api_reject_retries + 1
                reason = f"post_api {url} rejected it: {exc} ({attempts} attempt(s))"
            else:
                reason = f"post_api {url} down for {self.opts.post_api_retry_seconds:g}s: {exc}"
            try:
                await dead_letter(self._bus, self._names, d, reason, self.queue)
            except PublishFailed as pexc:
                log.error(
                    "post_api: %s could not be dead-lettered (%s); it stays in queue %s",
                    what,
                    pexc,
                    self.queue,
                )
                await d.reject(requeue=True)
                return
            log.error(
                "%s: %s dead-lettered to %s (reason in header %s); the next report goes out",
                reason,
                what,
                self._names.dead,
                REASON_HEADER,
            )
            self.dead_lettered += 1
            self._dead.inc()
            await self._settle(d)
            return
        self.delivered += 1
        self._delivered.inc()
        await self._act(d, ctype, answer)
        await self._settle(d)

    async def _settle(self, d: Delivery) -> None:
        await d.ack()
        if d.message_id:
            self._settled.append(d.message_id)
        self._progress.set()

    async def _post(self, body: bytes, what: str) -> tuple[str, bytes]:
        assert self._session is not None
        session = self._session
        first = time.monotonic()
        rejections = 0
        url = where(self.url)

        def stop(state: RetryCallState) -> bool:
            nonlocal rejections
            exc = state.outcome.exception() if state.outcome else None
            if self._stopping.is_set():
                return True
            if isinstance(exc, Rejected):
                rejections += 1
                return rejections > self.opts.post_api_reject_retries
            return time.monotonic() - first >= self.opts.post_api_retry_seconds

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            pause = state.next_action.sleep if state.next_action else 0.0
            self._retries.inc()
            if isinstance(exc, Rejected):
                log.warning(
                    "post_api %s rejected %s with %s (attempt %d of %d); retrying in %.1fs,"
                    " then it is dead-lettered",
                    url,
                    what,
                    exc,
                    state.attempt_number,
                    self.opts.post_api_reject_retries + 1,
                    pause,
                )
            else:
                log.warning(
                    "post_api %s: receiver down (%s, attempt %d); %s and every later report"
                    " wait in order, retrying in %.1fs for up to %gs in all",
                    url,
                    exc,
                    state.attempt_number,
                    what,
                    pause,
                    self.opts.post_api_retry_seconds,
                )

        try:
            async for attempt in AsyncRetrying(
                stop=stop,
                wait=wait_exponential_jitter(
                    multiplier=self.retry_wait,
                    max=MAX_BACKOFF,
                    jitter=self.retry_wait,
                ),
                retry=retry_if_exception_type((Unreachable, Rejected)),
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    return await self._attempt(session, body)
        except (Unreachable, Rejected):
            if self._stopping.is_set():
                raise _Stopping from None
            raise
        raise AssertionError  # unreachable: AsyncRetrying either returns or raises

    async def _attempt(self, session: aiohttp.ClientSession, body: bytes) -> tuple[str, bytes]:
        try:
            async with session.post(
                self.url,
                data=body,
                headers={"Content-Type": "application/json"},
                max_redirects=7,
            ) as r:
                failure = verdict(r.status)
                if failure is not None:
                    raise failure(f"HTTP {r.status}")
                return r.headers.get("Content-Type", ""), await r.content.read(MAX_ANSWER)
        except aiohttp.TooManyRedirects as exc:
            msg = f"more than 7 redirects (HTTP {exc.status})"
            raise Rejected(msg) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise Unreachable(text) from exc

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
