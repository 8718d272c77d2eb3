"""RabbitMQ through aio-pika: robust connection, confirms, mandatory publishes, manual acks.

The broker is one URL or the URLs of a cluster's nodes. The first connect tries each URL in
order, and is retried with jittered backoff for a bounded time (tenacity), then fails with
:class:`BrokerUnavailable`. After that aio-pika's robust connection reconnects on its own and
restores channels, queues and consumers; :class:`FailoverConnection` makes every reconnect
attempt go to the next URL of the list, so the loss of a node moves the bus to another node
without a TCP balancer (as RabbitMQ's own clients do with an address list). One confirm
channel publishes; each consumer gets its own channel so its prefetch applies to it alone.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
)
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)
from yarl import URL

from bridge import brokerurls
from bridge.brokerurls import redact
from bridge.bus import coalesce
from bridge.bus.base import Handler, Headers, OutMessage, Subscription
from bridge.errors import BrokerAway, BrokerUnavailable, ConfigError, PublishFailed

log = logging.getLogger(__name__)

__all__ = ["AmqpBus", "FailoverConnection", "redact", "vhost_of"]


def vhost_of(url: str) -> str:
    """The virtual host an AMQP URL names, as aiormq reads it (``/`` when none)."""
    path = URL(url).path
    return "/" if path in ("", "/") else path[1:].replace("%2F", "/")


def _refusal(exc: BaseException, url: str) -> ConfigError | None:
    """A ConfigError when the broker refused the URL's login or vhost: retrying cannot help."""
    where = redact(url)
    if isinstance(exc, aiormq.exceptions.AuthenticationError | aiormq.ProbableAuthenticationError):
        user = URL(url).user or "guest"
        return ConfigError(
            f"RabbitMQ at {where} refused the login of user {user!r} (ACCESS_REFUSED):"
            " check the user and password in amqp_url (AMQP_URL)"
        )
    # RabbitMQ answers Connection.Open for a vhost that does not exist (or that the user may
    # not use) with Connection.Close 530; aiormq 7 reports it as an InvalidFrameError that
    # only holds the frame's repr, so the reply text is lost.
    closed_on_open = isinstance(exc, aiormq.exceptions.InvalidFrameError) and (
        "Connection.OpenOk" in str(exc) and "Connection.Close" in str(exc)
    )
    not_allowed = isinstance(exc, aiormq.exceptions.ConnectionClosed) and (exc.args[:1] == (530,))
    if closed_on_open or not_allowed:
        user = URL(url).user or "guest"
        detail = f" ({exc.args[1]})" if not_allowed and len(exc.args) > 1 else ""
        return ConfigError(
            f"RabbitMQ at {where} refused to open virtual host {vhost_of(url)!r}{detail}:"
            f" it does not exist or user {user!r} has no permission on it; create it"
            " (rabbitmqctl add_vhost, set_permissions) or fix the vhost in amqp_url (AMQP_URL)"
        )
    return None


def _queue_mismatch(name: str, arguments: Mapping[str, Any], exc: Exception) -> ConfigError:
    """What to do when a queue exists with other arguments, naming the setting that decides."""
    wanted = str(arguments.get("x-queue-type", "classic"))
    other = "classic" if wanted == "quorum" else "quorum"
    return ConfigError(
        f"queue {name!r} exists on the broker with other arguments than this process"
        f" declares ({exc}); it is declared here as a {wanted} queue (queue_type = {wanted})."
        f" If it is a {other} queue, set queue_type = {other!r} (OPENQQ_QUEUE_TYPE={other})"
        " on every bridge and adapter of the namespace; otherwise delete it (rabbitmqctl"
        f" delete_queue {name}; its messages are lost) and it is declared again"
    )


def _retryable(exc: BaseException) -> bool:
    # Wrong credentials or vhost will not fix themselves; a broker that is away may come back.
    if isinstance(exc, aiormq.exceptions.AuthenticationError | aiormq.ProbableAuthenticationError):
        return False
    if isinstance(exc, aiormq.exceptions.InvalidFrameError | aiormq.exceptions.ConnectionClosed):
        return _refusal(exc, "amqp://localhost/") is None
    return isinstance(exc, (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, TimeoutError))


class _Unreachable(ConnectionError):
    """No URL of the list answered this attempt (the text names each URL's error)."""


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection over several broker URLs: each failure moves on to the next URL.

    aio-pika calls ``_on_connection_close`` when a live connection is lost and when a
    connect attempt fails; both turn to the next URL, so a reconnect first tries another
    node, then the others in turn (every ``reconnect_interval``), and channels, queues,
    bindings and consumers are restored on whichever node answers. aio-pika's own options
    (``reconnect_interval``) come from the first URL's query; aiormq reads each URL's own.
    """

    def __init__(self, urls: Sequence[str], *, start: int = 0, **kwargs: Any) -> None:
        self.urls = [URL(u) for u in urls]
        self._at = start % len(self.urls)
        super().__init__(self.urls[self._at], **kwargs)
        if coalesce.SUPPORTED:
            # Passed on to every aiormq connection this one makes, reconnects included.
            self.kwargs["transport_factory"] = coalesce.CoalescingTransportFactory()

    async def _on_connection_close(self, closing: Any) -> None:
        await super()._on_connection_close(closing)
        if not (self.close_called or self.is_closed) and len(self.urls) > 1:
            self._at = (self._at + 1) % len(self.urls)
            self.url = self.urls[self._at]

    def __str__(self) -> str:
        return redact(str(self.url))


class _AmqpDelivery:
    """A :class:`bridge.bus.base.Delivery` over an aio-pika incoming message."""

    __slots__ = (
        "_auto_ack",
        "_msg",
        "app_id",
        "body",
        "content_type",
        "correlation_id",
        "exchange",
        "expiration_ms",
        "headers",
        "message_id",
        "redelivered",
        "reply_to",
        "routing_key",
        "timestamp",
        "type",
    )

    def __init__(self, msg: AbstractIncomingMessage, auto_ack: bool = False) -> None:
        self._msg = msg
        self._auto_ack = auto_ack
        self.body: bytes = msg.body
        self.exchange: str = msg.exchange or ""
        self.routing_key: str = msg.routing_key or ""
        self.message_id: str | None = msg.message_id
        self.correlation_id: str | None = msg.correlation_id
        self.reply_to: str | None = msg.reply_to
        self.type: str | None = msg.type
        self.headers: Headers = {
            k: v if isinstance(v, str | int | float | bool | None) else str(v)
            for k, v in (msg.headers or {}).items()
        }
        self.redelivered: bool = bool(msg.redelivered)
        self.timestamp: datetime | None = msg.timestamp
        exp = msg.expiration
        # aio-pika decodes the AMQP expiration (ms text) into seconds or a timedelta.
        if isinstance(exp, timedelta):
            exp = exp.total_seconds()
        self.expiration_ms: int | None = int(exp * 1000) if isinstance(exp, int | float) else None
        self.app_id: str | None = msg.app_id
        self.content_type: str | None = msg.content_type

    async def ack(self) -> None:
        if not self._auto_ack:
            await self._msg.ack()

    async def reject(self, *, requeue: bool) -> None:
        if not self._auto_ack:
            await self._msg.reject(requeue=requeue)


class _AmqpSubscription:
    def __init__(self, channel: AbstractRobustChannel, queue: Any, tag: str) -> None:
        self._channel = channel
        self._queue = queue
        self._tag = tag

    async def cancel(self) -> None:
        if self._channel.is_closed:
            return
        await self._queue.cancel(self._tag)
        await self._channel.close()


#: Seconds a publish waits for the broker's confirm. A broker that blocks publishers (memory or
#: disk alarm) or a link that stalls without closing would otherwise hold the publisher for ever;
#: past this the publish counts as not confirmed, which every caller already handles (events are
#: published again with the same message_id, a reply's command is requeued).
CONFIRM_TIMEOUT = 60.0


#: RabbitMQ 4's ``max_message_size`` default (3.8 to 3.13 had 128 MiB): the broker refuses a
#: bigger message and closes the publishing channel. Setting ``max_message_mb``.
MAX_MESSAGE_BYTES = 16 * 2**20


class AmqpBus:
    """The :class:`bridge.bus.base.Bus` on RabbitMQ."""

    max_message_bytes: int | None = MAX_MESSAGE_BYTES

    def __init__(self, connection: FailoverConnection) -> None:
        self._conn = connection
        self.confirm_timeout = CONFIRM_TIMEOUT
        self._pub: AbstractRobustChannel | None = None
        self._decl: AbstractRobustChannel | None = None
        self._subs: list[_AmqpSubscription] = []
        # How each queue was declared: a consumer's channel redeclares it the same way, so
        # aio-pika's robust channel restores queue and consumer together after a reconnect.
        self._declared: dict[str, dict[str, Any]] = {}
        self._queues: dict[str, AbstractQueue] = {}
        self._on_lost: Any = None
        self._reconnected: list[Callable[[], None]] = []

    @classmethod
    async def connect(
        cls,
        url: str | Sequence[str],
        *,
        name: str,
        retry_seconds: float = 30.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> AmqpBus:
        """Connect, retrying with backoff for ``retry_seconds``; BrokerUnavailable after.

        ``url`` is one URL, a comma-separated list, or a list: each attempt tries every URL
        in order, and the connection fails over between them afterwards.
        """
        urls = brokerurls.split(url) if isinstance(url, str) else list(url)
        if not urls:
            msg = "no broker URL given (amqp_url, AMQP_URL)"
            raise ConfigError(msg)
        where = redact(",".join(urls))
        attempts = 0
        conn: FailoverConnection | None = None

        async def connect_any() -> FailoverConnection:
            # One attempt: every URL in order; the refusal of a login is final at once.
            errors: list[str] = []
            last: BaseException | None = None
            for i, one in enumerate(urls):
                candidate = FailoverConnection(
                    urls, start=i, client_properties={"connection_name": name}
                )
                try:
                    await candidate.connect(timeout=10)
                except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, TimeoutError) as exc:
                    with contextlib.suppress(*aio_pika.exceptions.CONNECTION_EXCEPTIONS):
                        await candidate.close()
                    refused = _refusal(exc, one)
                    if refused is not None:
                        raise refused from exc
                    errors.append(f"{redact(one)}: {str(exc) or type(exc).__name__}")
                    last = exc
                    continue
                return candidate
            assert last is not None
            raise _Unreachable("; ".join(errors)) from last

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "RabbitMQ at %s not reachable (attempt %d: %s); retrying for up to %gs",
                where,
                state.attempt_number,
                redact(str(exc) or type(exc).__name__) if exc else "?",
                retry_seconds,
            )

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_delay(retry_seconds),
                wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
                retry=retry_if_exception(_retryable),
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    conn = await connect_any()
        except ConfigError:
            raise
        except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, TimeoutError, ValueError) as exc:
            msg = (
                f"RabbitMQ at {where} unreachable after {attempts} attempt(s)"
                f" over {retry_seconds:g}s: {str(exc) or type(exc).__name__}"
            )
            raise BrokerUnavailable(redact(msg)) from exc
        assert conn is not None

        down: list[str] = []

        def lost(_conn: object, exc: BaseException | None = None) -> None:
            # Called for the loss and again for each failed reconnect attempt.
            at = str(conn)
            if down:
                log.debug("RabbitMQ at %s not reachable: %s", at, redact(str(exc)))
                return
            down.append(at)
            log.warning(
                "RabbitMQ connection to %s lost (%s); reconnecting%s",
                at,
                redact(str(exc)),
                f" (trying each of {len(urls)} URLs in turn)" if len(urls) > 1 else "",
            )

        def restored(_conn: object) -> None:
            log.warning("RabbitMQ connection restored, to %s", conn)
            down.clear()
            for callback in list(bus._reconnected):
                try:
                    callback()
                except Exception:
                    log.exception("reconnect callback %r failed", callback)

        conn.close_callbacks.add(lost)
        conn.reconnect_callbacks.add(restored)
        bus = cls(conn)
        bus.max_message_bytes = max_message_bytes
        bus._on_lost = lost
        bus._pub = await conn.channel(publisher_confirms=True, on_return_raises=True)
        bus._decl = await conn.channel()
        return bus

    @property
    def current_url(self) -> str:
        """The URL the bus is connected to (or reconnecting to), password hidden."""
        return str(self._conn)

    @property
    def connected(self) -> bool:
        """Whether the connection is up (False while it reconnects)."""
        return self._conn.connected.is_set() and self._conn.transport is not None

    @property
    def connection(self) -> FailoverConnection:
        """The robust connection, for the few parts that need AMQP beyond the Bus interface
        (the role lease, the command record stream)."""
        return self._conn

    @property
    def _publish_channel(self) -> AbstractRobustChannel:
        assert self._pub is not None
        return self._pub

    @property
    def _declare_channel(self) -> AbstractRobustChannel:
        assert self._decl is not None
        return self._decl

    async def declare_exchange(self, name: str, *, auto_delete: bool = False) -> None:
        try:
            await self._declare_channel.declare_exchange(
                name, aio_pika.ExchangeType.TOPIC, durable=True, auto_delete=auto_delete
            )
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            msg = f"exchange {name!r} exists with other settings on the broker: {exc}"
            raise ConfigError(msg) from exc

    async def declare_queue(
        self,
        name: str = "",
        *,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        # Our own names for private queues: server-named ("amq.gen-") queues cannot be
        # redeclared by name on another channel or after a reconnect.
        name = name or f"openqq-bridge.private.{uuid.uuid4().hex}"
        kwargs: dict[str, Any] = {
            "durable": not exclusive,
            "exclusive": exclusive,
            "auto_delete": auto_delete,
            "arguments": dict(arguments or {}),
        }
        try:
            q = await self._declare_channel.declare_queue(name, **kwargs)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            raise _queue_mismatch(name, kwargs["arguments"], exc) from exc
        self._declared[name] = kwargs
        self._queues[name] = q
        return q.name

    async def _queue_on(self, channel: AbstractRobustChannel, name: str) -> AbstractQueue:
        kwargs = self._declared.get(name)
        if kwargs is None:
            return await channel.declare_queue(name, passive=True)
        return await channel.declare_queue(name, **kwargs)

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        q = self._queues.get(queue) or await self._queue_on(self._declare_channel, queue)
        # A robust queue remembers its bindings and restores them after a reconnect.
        await q.bind(exchange, routing_key)

    async def unbind(self, queue: str, exchange: str, routing_key: str) -> None:
        q = self._queues.get(queue) or await self._queue_on(self._declare_channel, queue)
        await q.unbind(exchange, routing_key)

    async def publish(
        self, exchange: str, routing_key: str, message: OutMessage, *, mandatory: bool
    ) -> bool:
        # Straight to aiormq: aio-pika's Message object costs more than the rest of a publish.
        props = aiormq.spec.Basic.Properties(
            app_id=message.app_id,
            content_type=message.content_type,
            correlation_id=message.correlation_id,
            delivery_mode=2 if message.persistent else 1,
            expiration=str(message.expiration_ms) if message.expiration_ms is not None else None,
            headers=dict(message.headers) if message.headers else None,
            message_id=message.message_id,
            message_type=message.type,
            reply_to=message.reply_to,
            timestamp=message.timestamp,
        )
        try:
            # aiormq's Channel: its basic_publish takes ``wait``, which the abstract one lacks.
            channel = cast(aiormq.Channel, await self._publish_channel.get_underlay_channel())
        except aio_pika.exceptions.CONNECTION_EXCEPTIONS as exc:
            text = f"not published to {exchange!r}: the broker connection is down ({exc!r})"
            raise BrokerAway(text) from exc
        if channel.is_closed or self._conn.transport is None:
            text = f"not published to {exchange!r}: the broker connection is down"
            raise BrokerAway(text)
        try:
            # wait=False: hand the frame to the connection's writer and wait for the confirm
            # only. aiormq's default holds the channel's lock until the frame is written, so
            # every publish on the channel waited for the one before it to reach the socket
            # (a loop pass each); the order stays the lock's and the writer's, and what is in
            # flight stays bounded by the callers' windows, each waiting for its confirm.
            # aiormq's own timeout bounds the whole publish, confirm included (one timer).
            await channel.basic_publish(
                message.body,
                exchange=exchange,
                routing_key=routing_key,
                properties=props,
                mandatory=mandatory,
                wait=False,
                timeout=self.confirm_timeout,
            )
        except TimeoutError as exc:
            text = (
                f"publish to {exchange!r} key {routing_key!r} not confirmed within"
                f" {self.confirm_timeout:g}s (is the broker blocking publishers: a memory or disk"
                " alarm?)"
            )
            raise PublishFailed(text) from exc
        except aiormq.exceptions.PublishError:
            return False
        except (aiormq.exceptions.DeliveryError, *aio_pika.exceptions.CONNECTION_EXCEPTIONS) as exc:
            text = f"publish to {exchange!r} key {routing_key!r} not confirmed: {exc!r}"
            raise PublishFailed(text) from exc
        return True

    async def consume(
        self, queue: str, handler: Handler, *, prefetch: int, auto_ack: bool = False
    ) -> Subscription:
        ch: AbstractRobustChannel = await self._conn.channel()
        await ch.set_qos(prefetch_count=prefetch)
        q = await self._queue_on(ch, queue)

        async def on_message(msg: AbstractIncomingMessage) -> None:
            await handler(_AmqpDelivery(msg, auto_ack))

        tag = await q.consume(on_message, no_ack=auto_ack)
        sub = _AmqpSubscription(ch, q, tag)
        self._subs.append(sub)
        return sub

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnected.append(callback)

    async def delete_queue(self, name: str) -> None:
        self._declared.pop(name, None)
        self._queues.pop(name, None)
        await self._declare_channel.queue_delete(name)

    async def delete_exchange(self, name: str) -> None:
        await self._declare_channel.exchange_delete(name)

    async def close(self) -> None:
        for sub in self._subs:
            try:
                await sub.cancel()
            except aio_pika.exceptions.CONNECTION_EXCEPTIONS as exc:
                log.debug("consumer cancel during close failed: %s", exc)
        self._subs.clear()
        for ch in (self._pub, self._decl):
            if ch is not None and not ch.is_closed:
                await ch.close()
        if self._on_lost is not None:
            # Closing on purpose is not a lost connection.
            self._conn.close_callbacks.discard(self._on_lost)
        await self._conn.close()
