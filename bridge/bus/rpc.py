"""RpcClient: publish a command and wait for its reply (reply_to + correlation_id).

Used by the HTTP adapter and by tools; any other program can do the same with plain AMQP
(README has an example). One exclusive reply queue per client; pending calls are futures by
correlation id; a command nobody consumes is returned by the broker and fails at once instead
of waiting for the timeout.

A call's command carries an AMQP expiration equal to the caller's wait: if no bridge takes it
in time the broker drops it (to the dead-letter queue), and a bridge that took it but did not
hand it to QQ in time does not send it. A call that gets no reply (timeout, or the client
closed while it waited) raises :class:`ReplyLost`: its result is unknown, never "failed".
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from bridge.bus.base import Bus, Delivery, OutMessage, Subscription
from bridge.core.codec import encode
from bridge.core.commands import Command
from bridge.core.routing import Names, command_key
from bridge.errors import NoRoute, RpcTimeout

log = logging.getLogger(__name__)


class ReplyLost(ConnectionError):
    """The command was sent, but the client closed before its reply came: result unknown."""


class RpcClient:
    """Sends commands to the bridges of a namespace."""

    def __init__(self, bus: Bus, names: Names) -> None:
        self._bus = bus
        self._names = names
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._queue = ""
        self._sub: Subscription | None = None
        self._closed = False

    async def start(self) -> None:
        """Declare the reply queue and start listening on it."""
        self._queue = await self._bus.declare_queue("", exclusive=True, auto_delete=True)
        # Replies are not acked: the broker forgets each as it sends it (one frame less).
        self._sub = await self._bus.consume(self._queue, self._on_reply, prefetch=0, auto_ack=True)

    async def close(self) -> None:
        """Refuse new calls, fail every pending one with ReplyLost, stop listening."""
        self.abort_pending()
        if self._sub is not None:
            await self._sub.cancel()
            self._sub = None

    def abort_pending(self) -> None:
        """Refuse new calls and fail the pending ones at once (ReplyLost): a stop is under way."""
        self._closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ReplyLost("the RPC client stopped before the reply came"))
        self._pending.clear()

    async def _on_reply(self, d: Delivery) -> None:
        fut = self._pending.get(d.correlation_id or "")
        if fut is None or fut.done():
            log.debug("late or unknown reply %s dropped", d.correlation_id)
            return
        fut.set_result(d.body)

    async def call(
        self,
        account: str,
        command: Command,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - the call owns its reply deadline
        message_id: str | None = None,
        expiration_ms: int | None = None,
    ) -> bytes:
        """Send a command and return the reply body; RpcTimeout, NoRoute on failure.

        ``expiration_ms`` defaults to the wait (``timeout``), so a command whose caller gave
        up is never run later. ConnectionError if the client is stopping (nothing was sent).
        """
        if self._closed:
            msg = "the RPC client is stopping"
            raise ConnectionError(msg)
        if expiration_ms is None:
            expiration_ms = max(1, int(timeout * 1000))
        corr = uuid.uuid4().hex
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[corr] = fut
        try:
            await self._send(account, command, corr, self._queue, message_id, expiration_ms)
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError as exc:
            msg = f"no reply from account {account!r} within {timeout:g}s"
            raise RpcTimeout(msg) from exc
        finally:
            self._pending.pop(corr, None)

    async def cast(self, account: str, command: Command, *, message_id: str | None = None) -> None:
        """Send a command without waiting for a reply (fire-and-forget)."""
        if self._closed:
            msg = "the RPC client is stopping"
            raise ConnectionError(msg)
        await self._send(account, command, None, None, message_id, None)

    async def _send(
        self,
        account: str,
        command: Command,
        corr: str | None,
        reply_to: str | None,
        message_id: str | None,
        expiration_ms: int | None,
    ) -> None:
        key = command_key(command.QUEUE, account)
        msg = OutMessage(
            body=encode(command),
            message_id=message_id or uuid.uuid4().hex,
            correlation_id=corr,
            reply_to=reply_to,
            type=f"command.{command.__struct_config__.tag}",
            expiration_ms=expiration_ms,
        )
        if not await self._bus.publish(self._names.commands, key, msg, mandatory=True):
            text = f"no bridge queue is bound for {key} on {self._names.commands}"
            raise NoRoute(text)
