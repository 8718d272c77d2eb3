"""The interface both buses implement: AMQP 0-9-1 semantics reduced to what the bridge uses.

Topic exchanges, named or server-named queues, bindings, mandatory publishes with confirms,
consumers with prefetch and manual ack/reject, per-queue dead-letter exchanges and message
expiration. The in-memory bus reproduces these semantics so the embedded default and the
RabbitMQ deployment behave the same (tests/contract runs one suite against both).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

HeaderValue = str | int | float | bool | None
Headers = Mapping[str, HeaderValue]

#: Header the bridge sets on a dead letter: why it was dead-lettered.
REASON_HEADER = "x-openqq-reason"
#: Header on a dead letter: the queue it was taken from.
QUEUE_HEADER = "x-openqq-queue"


@dataclass(frozen=True, slots=True)
class OutMessage:
    """A message to publish, with the AMQP properties the contract uses."""

    body: bytes
    message_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    type: str | None = None
    headers: Headers = field(default_factory=dict)
    expiration_ms: int | None = None
    timestamp: datetime | None = None
    persistent: bool = True
    content_type: str = "application/json"
    app_id: str = "openqq-bridge"


class Delivery(Protocol):
    """A message handed to a consumer; it must be acked or rejected exactly once."""

    body: bytes
    exchange: str
    routing_key: str
    message_id: str | None
    correlation_id: str | None
    reply_to: str | None
    type: str | None
    headers: Headers
    redelivered: bool
    timestamp: datetime | None
    expiration_ms: int | None
    app_id: str | None
    content_type: str | None

    async def ack(self) -> None:
        """Done with it: the broker forgets it."""

    async def reject(self, *, requeue: bool) -> None:
        """Give it back (requeue) or drop it to the queue's dead-letter exchange."""


Handler = Callable[[Delivery], Awaitable[None]]


class Subscription(Protocol):
    """A running consumer."""

    async def cancel(self) -> None:
        """Stop receiving; unacked deliveries go back to the queue."""


class Bus(Protocol):
    """What the bridge needs from a broker."""

    #: The largest message body the broker takes (None: no limit).
    max_message_bytes: int | None

    async def declare_exchange(self, name: str, *, auto_delete: bool = False) -> None:
        """Declare a durable topic exchange (idempotent)."""

    async def declare_queue(
        self,
        name: str = "",
        *,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        """Declare a queue (durable unless exclusive); "" asks for a generated name."""
        ...

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Route messages whose key matches the topic pattern to the queue."""

    async def unbind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Remove a binding (no error when it does not exist)."""

    async def publish(
        self, exchange: str, routing_key: str, message: OutMessage, *, mandatory: bool
    ) -> bool:
        """Publish and wait for the broker's confirm; False when returned unroutable.

        Raises ``PublishFailed`` when the broker nacks or the connection dies first.
        """
        ...

    async def consume(
        self, queue: str, handler: Handler, *, prefetch: int, auto_ack: bool = False
    ) -> Subscription:
        """Start delivering the queue's messages to ``handler``.

        Manual acks unless ``auto_ack`` (then the broker forgets a message once it is sent,
        and ``ack``/``reject`` do nothing): only for replies nobody needs twice.
        """
        ...

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each reconnect, once queues and consumers are restored.

        Messages published to a private queue while it was gone (replies) are lost; this is
        the moment to ask for them again. A bus that never reconnects never calls it.
        """

    async def delete_queue(self, name: str) -> None:
        """Delete a queue (tests and tooling)."""

    async def delete_exchange(self, name: str) -> None:
        """Delete an exchange (tests and tooling)."""

    async def close(self) -> None:
        """Close channels, then the connection."""
