"""RpcClient: publish a command and wait for its reply (reply_to + correlation_id).

Used by the HTTP adapter and by tools; any other program can do the same with plain AMQP
(README has an example). One exclusive reply queue per client; pending calls are futures by
correlation id; a command nobody consumes is returned by the broker and fails at once instead
of waiting for the timeout.

A call's command carries an AMQP expiration equal to the caller's wait: if no bridge takes it
in time the broker drops it (to the dead-letter queue), and a bridge that took it but did not
hand it to QQ in time does not send it. A call that gets no reply (timeout, or the client
closed while it waited) raises :class:`ReplyLost`: its result is unknown, never "failed".

While the broker connection is down (the bus reconnecting, perhaps to another node), a call
or cast waits for it, bounded by its timeout, instead of failing at once: a publish that
surely did not happen (:class:`BrokerAway`) is simply tried again, and one that may have
happened (no confirm) is sent again with the same ``message_id``, which the bridge answers
from its record of done commands instead of running it twice. After a reconnect, the
commands of pending calls are sent again the same way: their replies may have gone to the
reply queue that died with the old connection. A call that never got its command out within
its timeout raises BrokerAway (nothing was sent); one that did, or may have, RpcTimeout.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from bridge.bus.base import Bus, Delivery, OutMessage, Subscription
from bridge.core.codec import encode
from bridge.core.commands import Command
from bridge.core.routing import Names, command_key
from bridge.errors import BrokerAway, NoRoute, PublishFailed, RpcTimeout

log = logging.getLogger(__name__)

#: First and longest pause between two publish attempts while the broker is away.
RETRY_FIRST = 0.05
RETRY_MAX = 0.5


class ReplyLost(ConnectionError):
    """The command was sent, but the client closed before its reply came: result unknown."""


class MaybeSent(PublishFailed):
    """A cast not confirmed within its timeout: the command may have been sent (unknown)."""


def _never_out(timeout: float) -> BrokerAway:
    return BrokerAway(f"the broker connection stayed down for {timeout:g}s: command not sent")


@dataclass(slots=True, kw_only=True)
class _Send:
    """A command to get out to the broker, with what is needed to send it again."""

    account: str
    command: Command
    message_id: str
    deadline: float
    expiration_ms: int | None = None


@dataclass(slots=True, kw_only=True)
class _Call(_Send):
    """A call waiting for its reply."""

    future: asyncio.Future[bytes]
    #: Confirmed by the broker once: only then is it sent again after a reconnect.
    sent: bool = False


class RpcClient:
    """Sends commands to the bridges of a namespace."""

    def __init__(self, bus: Bus, names: Names) -> None:
        self._bus = bus
        self._names = names
        self._pending: dict[str, _Call] = {}
        self._resends: set[asyncio.Task[None]] = set()
        self._queue = ""
        self._sub: Subscription | None = None
        self._closed = False
        #: Keys (correlation id, or a cast's own) of sends a publish may have carried out.
        self._maybe_out: dict[str, bool] = {}

    async def start(self) -> None:
        """Declare the reply queue and start listening on it."""
        self._queue = await self._bus.declare_queue("", exclusive=True, auto_delete=True)
        # Replies are not acked: the broker forgets each as it sends it (one frame less).
        self._sub = await self._bus.consume(self._queue, self._on_reply, prefetch=0, auto_ack=True)
        self._bus.on_reconnect(self._on_reconnect)

    async def close(self) -> None:
        """Refuse new calls, fail every pending one with ReplyLost, stop listening."""
        self.abort_pending()
        if self._sub is not None:
            await self._sub.cancel()
            self._sub = None

    def abort_pending(self) -> None:
        """Refuse new calls and fail the pending ones at once (ReplyLost): a stop is under way."""
        self._closed = True
        for call in self._pending.values():
            if not call.future.done():
                call.future.set_exception(ReplyLost("the RPC client stopped before the reply came"))
        self._pending.clear()
        for task in self._resends:
            task.cancel()

    async def _on_reply(self, d: Delivery) -> None:
        call = self._pending.get(d.correlation_id or "")
        if call is None or call.future.done():
            log.debug("late or unknown reply %s dropped", d.correlation_id)
            return
        call.future.set_result(d.body)

    def _on_reconnect(self) -> None:
        # Replies sent while the reply queue was gone are lost: ask again, same message_id.
        loop = asyncio.get_running_loop()
        waiting = [
            (corr, call)
            for corr, call in self._pending.items()
            if call.sent and not call.future.done()
        ]
        if waiting and not self._closed:
            log.info("broker reconnected: asking again for %d pending repl(ies)", len(waiting))
        for corr, call in waiting:
            task = loop.create_task(self._resend(corr, call))
            self._resends.add(task)
            task.add_done_callback(self._resends.discard)

    async def _resend(self, corr: str, call: _Call) -> None:
        left = call.deadline - asyncio.get_running_loop().time()
        if left <= 0 or self._closed:
            return
        try:
            async with asyncio.timeout(left):
                await self._send_until_out(call, corr)
        except (TimeoutError, PublishFailed, NoRoute, ConnectionError) as exc:
            # The call itself still waits for its reply, and answers "unknown" if none comes.
            log.debug("command %s not sent again after reconnect: %r", call.message_id, exc)

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        corr = uuid.uuid4().hex
        message_id = message_id or uuid.uuid4().hex
        fut: asyncio.Future[bytes] = loop.create_future()
        call = _Call(
            account=account,
            command=command,
            message_id=message_id,
            deadline=deadline,
            expiration_ms=expiration_ms,
            future=fut,
        )
        self._pending[corr] = call
        try:
            async with asyncio.timeout(timeout):
                await self._send_until_out(call, corr)
                call.sent = True
                return await fut
        except TimeoutError as exc:
            if not call.sent and not self._maybe_out.pop(corr, False):
                raise _never_out(timeout) from exc
            msg = f"no reply from account {account!r} within {timeout:g}s"
            raise RpcTimeout(msg) from exc
        finally:
            self._pending.pop(corr, None)
            self._maybe_out.pop(corr, None)
            if fut.done() and not fut.cancelled():
                fut.exception()  # failed by abort_pending() while still sending: seen here

    async def cast(
        self,
        account: str,
        command: Command,
        *,
        message_id: str | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - the bound of the wait for the broker
    ) -> None:
        """Send a command without waiting for a reply (fire-and-forget).

        Waits up to ``timeout`` for a broker connection that is down; then BrokerAway (not
        sent) or :class:`MaybeSent` (a publish went out but was never confirmed). Stopped
        meanwhile: ConnectionError if nothing went out, ReplyLost if it may have.
        """
        if self._closed:
            msg = "the RPC client is stopping"
            raise ConnectionError(msg)
        key = uuid.uuid4().hex
        deadline = asyncio.get_running_loop().time() + timeout
        cast = _Send(
            account=account,
            command=command,
            message_id=message_id or uuid.uuid4().hex,
            deadline=deadline,
        )
        try:
            async with asyncio.timeout(timeout):
                await self._send_until_out(cast, None, key)
        except TimeoutError as exc:
            if self._maybe_out.pop(key, False):
                msg = f"not confirmed by the broker within {timeout:g}s: it may have been sent"
                raise MaybeSent(msg) from exc
            raise _never_out(timeout) from exc
        finally:
            self._maybe_out.pop(key, None)

    async def _send_until_out(self, call: _Send, corr: str | None, key: str | None = None) -> None:
        """Publish until the broker confirms it, riding out a reconnect (caller bounds it).

        A call's command expires when its caller stops waiting (unless the caller chose the
        expiration); a cast's never. A publish that may have happened is remembered under
        ``key`` (default: ``corr``), so the caller can tell "not sent" from "result unknown"
        when its time runs out.
        """
        loop = asyncio.get_running_loop()
        pause = RETRY_FIRST
        key = key or corr or ""
        while True:
            expiration_ms = call.expiration_ms
            if expiration_ms is None and corr is not None:
                expiration_ms = max(1, int((call.deadline - loop.time()) * 1000))
            try:
                await self._send(
                    call.account,
                    call.command,
                    corr,
                    self._queue if corr is not None else None,
                    call.message_id,
                    expiration_ms,
                )
            except BrokerAway:
                pass
            except PublishFailed as exc:
                self._maybe_out[key] = True
                log.debug("command %s not confirmed (%s); sending it again", call.message_id, exc)
            else:
                return
            if self._closed:
                if self._maybe_out.get(key):
                    msg = "the RPC client stopped; the command may have been sent"
                    raise ReplyLost(msg)
                msg = "the RPC client is stopping"
                raise ConnectionError(msg)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX)

    async def _send(
        self,
        account: str,
        command: Command,
        corr: str | None,
        reply_to: str | None,
        message_id: str,
        expiration_ms: int | None,
    ) -> None:
        key = command_key(command.QUEUE, account)
        msg = OutMessage(
            body=encode(command),
            message_id=message_id,
            correlation_id=corr,
            reply_to=reply_to,
            type=f"command.{command.__struct_config__.tag}",
            expiration_ms=expiration_ms,
        )
        if not await self._bus.publish(self._names.commands, key, msg, mandatory=True):
            text = f"no bridge queue is bound for {key} on {self._names.commands}"
            raise NoRoute(text)
