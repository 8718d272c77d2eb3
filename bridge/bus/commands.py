"""CommandServer: consumes an account's command queues; the ack policy lives here alone.

For each delivery, in this order:
- undecodable or invalid body -> copied to ``<ns>.dead`` with the reason in the
  ``x-openqq-reason`` header, an error reply (code -10) to ``reply_to`` if any, then acked;
- ``message_id`` already done (in the command record) -> the recorded reply is sent again,
  nothing runs; started but never finished (a bridge died mid-way) -> answered "result
  unknown" (sends: -3 发送结果未知), nothing runs;
- otherwise the command runs; a retryable failure (upstream or broker briefly away) is
  requeued once, then dead-lettered; any other failure is dead-lettered with its reason and
  answered with an error reply. The outcome is recorded, then the reply published, then the
  delivery acked: a reply that cannot be published leaves the delivery unacked (requeued), and
  its redelivery is answered from the record.

Each command runs in its own task, owned by this server, not in the consumer callback that
delivered it: when the connection drops, the client library cancels the callbacks of the closed
channel, and a command already handed to QQ must still come to its end and be recorded. The
executor calls the ``handover`` it is given right before the action reaches QQ; that records
the command as started (durably) first.

Stopping: commands not yet handed to the QQ side are withdrawn (their deliveries go back to
the queue untouched, to run at the next start or on another bridge); commands already handed
over finish, reply and ack (bounded); only then are the consumers cancelled, so no delivery is
settled after the broker took it back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from bridge.bus.base import Bus, Delivery, OutMessage, Subscription
from bridge.bus.deadletter import command_queue_of, dead_letter
from bridge.core.codec import decode_command, encode
from bridge.core.commands import (
    CODE_INVALID_COMMAND,
    QUEUE_KINDS,
    Command,
    StatusReply,
    command_name,
    failure_reply,
    unknown_reply,
)
from bridge.core.routing import Names
from bridge.errors import RETRYABLE, PublishFailed
from bridge.metrics import OFF, Metrics
from bridge.store import CommandRecord

log = logging.getLogger(__name__)

#: Bytes kept free under the broker's message limit for a reply's properties and headers.
REPLY_HEADROOM = 64 * 1024

#: Called by the executor right before an action reaches the QQ side.
Handover = Callable[[], Awaitable[None]]
Executor = Callable[[Command, Handover], Awaitable[Any]]


class Expired(Exception):
    """The command's expiration passed before it was handed to the QQ side."""


class CommandServer:
    """Consumes ``<ns>.<account>.{send,kick,shutup,query,control}`` and replies."""

    def __init__(
        self,
        bus: Bus,
        names: Names,
        account: str,
        execute: Executor,
        record: CommandRecord,
        *,
        prefetch: int = 64,
        metrics: Metrics = OFF,
    ) -> None:
        self._bus = bus
        self._metrics = metrics
        metrics.probe("openqq_commands_in_flight", (account,), lambda: len(self._inflight))
        self._names = names
        self._account = account
        self._execute = execute
        self._record = record
        self._prefetch = prefetch
        self._subs: list[Subscription] = []
        # Running commands -> whether each was handed to the QQ side.
        self._inflight: dict[asyncio.Task[None], bool] = {}
        self._withdrawn: set[asyncio.Task[None]] = set()
        self._stopping = False
        # message_id -> reply of commands running now, so a duplicate waits for it.
        self._running: dict[str, asyncio.Future[bytes]] = {}
        self.executed = 0
        self.duplicates = 0
        self.dead_lettered = 0

    async def start(self) -> None:
        """Start consuming every command queue of the account."""
        for kind in QUEUE_KINDS:
            queue = self._names.command_queue(self._account, kind)
            self._subs.append(
                await self._bus.consume(queue, self._on_delivery, prefetch=self._prefetch)
            )

    async def stop(self, grace: float = 10.0) -> None:
        """Withdraw commands not yet handed over, let the others finish (bounded), cancel."""
        self._stopping = True
        for task, handed in list(self._inflight.items()):
            if not handed:
                self._withdrawn.add(task)
                task.cancel()
        if self._inflight:
            _, pending = await asyncio.wait(list(self._inflight), timeout=grace)
            if pending:
                log.warning(
                    "%d command(s) handed to the QQ side still running after %.0fs;"
                    " cancelled, their result is unknown",
                    len(pending),
                    grace,
                )
                for t in pending:
                    t.cancel()
                await asyncio.wait(pending)
        # Only now: cancelling gives every unsettled delivery back to the broker.
        for sub in self._subs:
            await sub.cancel()
        self._subs.clear()

    async def _on_delivery(self, d: Delivery) -> None:
        if self._stopping:
            # Left unsettled: the broker takes it back when the consumer is cancelled.
            return
        # Its own task: cancelling this callback (its channel closed) must not cut it short.
        task = asyncio.get_running_loop().create_task(self._own(d))
        self._inflight[task] = False
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and task.cancelled():
                return
            if not task.done():
                log.debug("delivery of %s cancelled with its channel; it runs on", d.message_id)
                return
            raise

    async def _own(self, d: Delivery) -> None:
        task = asyncio.current_task()
        try:
            await self._handle(d)
        except asyncio.CancelledError:
            if task not in self._withdrawn:
                raise
            # Withdrawn by stop() before it reached the QQ side: nothing ran, nothing settled.
            log.debug("command %s withdrawn at stop; back to the queue", d.message_id)
        finally:
            if task is not None:
                self._inflight.pop(task, None)
                self._withdrawn.discard(task)

    def _count(self, name: str, outcome: str, start: float) -> None:
        m = self._metrics
        m.child(m.commands, self._account, name, outcome).inc()
        m.child(m.command_seconds, self._account, name).observe(time.perf_counter() - start)

    async def _handle(self, d: Delivery) -> None:
        start = time.perf_counter()
        try:
            cmd = decode_command(d.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            reason = f"invalid command: {exc}"
            log.warning(
                "command on %s (message_id %s) dead-lettered: %s",
                d.routing_key,
                d.message_id,
                reason,
            )
            await self._settle_failed(
                d, reason, StatusReply(code=CODE_INVALID_COMMAND, status=reason)
            )
            self._count("invalid", "dead_lettered", start)
            return

        name = command_name(cmd)
        mid = d.message_id
        if mid and mid in self._running:
            # The same command is running right now: answer with its result, do not run.
            self.duplicates += 1
            self._count(name, "duplicate", start)
            log.info("command %s message_id %s is running; duplicate waits for it", name, mid)
            try:
                first = await asyncio.shield(self._running[mid])
            except ConnectionError:
                await _settle(d, ack=False)
                return
            await self._answer(d, first, name)
            return
        if mid:
            seen = self._record.lookup(mid)
            if seen.state == "done":
                self.duplicates += 1
                self._count(name, "duplicate", start)
                log.info(
                    "command %s message_id %s already done; replying again, not run",
                    name,
                    mid,
                )
                await self._answer(d, seen.reply or b"null", name)
                return
            if seen.state == "started":
                self.duplicates += 1
                self._count(name, "duplicate", start)
                reason = "result unknown: the bridge stopped while running this command"
                log.warning("command %s message_id %s: %s; not run again", name, mid, reason)
                reply = encode(unknown_reply(cmd, reason))
                if await self._finish(mid, reply):
                    await self._answer(d, reply, name)
                else:
                    await _settle(d, ack=False)
                return

        running: asyncio.Future[bytes] | None = None
        if mid:
            running = asyncio.get_running_loop().create_future()
            self._running[mid] = running
        body: bytes | None = None
        try:
            body = await self._run(d, cmd, name, mid, start)
        finally:
            if mid:
                del self._running[mid]
            if running is not None:
                if body is None:
                    # Requeued or cancelled: duplicates waiting for it go back too.
                    running.set_exception(ConnectionError("command requeued"))
                    running.exception()  # nobody may be waiting: mark it retrieved
                else:
                    running.set_result(body)

    async def _run(
        self, d: Delivery, cmd: Command, name: str, mid: str | None, start: float
    ) -> bytes | None:
        """Execute, reply, settle; the reply body, or None when the delivery was requeued."""
        body, outcome = await self._execute_settle(d, cmd, name, mid)
        if body is not None:
            # What the caller got: a result, a failure, or "result unknown".
            self._count(name, outcome, start)
        return body

    async def _execute_settle(
        self, d: Delivery, cmd: Command, name: str, mid: str | None
    ) -> tuple[bytes | None, str]:
        handed: list[bool] = []
        # Reads change nothing, so running one again is harmless; recording their answers (a
        # contact page is megabytes) would keep them in every bridge's memory for
        # idempotency_hours.
        recorded = mid if cmd.QUEUE != "query" else None
        # The caller's expiration, counted from now: the broker kept it at most that long.
        deadline = (
            asyncio.get_running_loop().time() + d.expiration_ms / 1000
            if d.expiration_ms is not None
            else None
        )

        async def handover() -> None:
            if deadline is not None and asyncio.get_running_loop().time() > deadline:
                # Its caller stopped waiting long ago (the expiration): never send it now.
                raise Expired
            task = asyncio.current_task()
            if task is not None and task in self._inflight:
                # From here on a stop lets it finish instead of withdrawing it.
                self._inflight[task] = True
            if mid:
                # Durable before QQ sees it; if this fails, nothing was handed over.
                await self._record.started(mid)
            handed.append(True)

        try:
            result = await self._execute(cmd, handover)
        except Expired:
            reason = (
                f"expired: not run, its expiration ({d.expiration_ms} ms) passed while it"
                " waited its turn"
            )
            log.warning("command %s (message_id %s) %s", name, mid, reason)
            return (
                await self._settle_failed(d, reason, failure_reply(cmd, reason, code=-5), recorded),
                "failed",
            )
        except RETRYABLE as exc:
            if handed:
                # It reached the QQ side: trying again could do it twice.
                reason = f"result unknown: {exc}"
                return (
                    await self._settle_failed(d, reason, unknown_reply(cmd, reason), recorded),
                    "unknown",
                )
            if not d.redelivered:
                log.warning(
                    "command %s (message_id %s) failed, requeued once: %s",
                    name,
                    mid,
                    exc,
                )
                await _settle(d, ack=False)
                return None, ""
            reason = f"failed twice: {exc}"
            return (
                await self._settle_failed(d, reason, failure_reply(cmd, reason, code=-5), recorded),
                "failed",
            )
        except Exception as exc:
            log.exception("command %s (message_id %s) crashed", name, mid)
            reason = f"{type(exc).__name__}: {exc}"
            if handed:
                reason = f"result unknown: {reason}"
                return (
                    await self._settle_failed(d, reason, unknown_reply(cmd, reason), recorded),
                    "unknown",
                )
            return (
                await self._settle_failed(d, reason, failure_reply(cmd, reason, code=-5), recorded),
                "failed",
            )

        self.executed += 1
        body = encode(result)
        limit = self._bus.max_message_bytes
        if limit is not None and len(body) > limit - REPLY_HEADROOM:
            # The broker would refuse the reply: the delivery would be requeued and run again
            # for ever (reads are not recorded). A clear error instead.
            reason = (
                f"answer too large for the broker: {len(body):,} bytes, over the"
                f" {limit - REPLY_HEADROOM:,} a reply may carry; read the contacts in pages"
                " with get_contacts_page"
            )
            log.warning("command %s (message_id %s) not answered in full: %s", name, mid, reason)
            body = encode(failure_reply(cmd, reason, code=-5))
        if recorded and not await self._finish(recorded, body):
            await _settle(d, ack=False)
            return body, "ok"
        await self._answer(d, body, name)
        return body, "ok"

    async def _settle_failed(
        self, d: Delivery, reason: str, reply: object, mid: str | None = None
    ) -> bytes | None:
        body = encode(reply)
        try:
            await self.dead_letter(d, reason)
        except PublishFailed:
            # The copy did not reach the dead-letter queue: keep the original instead.
            log.exception("dead-lettering %s failed; message requeued", d.routing_key)
            await _settle(d, ack=False)
            return None
        if mid and not await self._finish(mid, body):
            await _settle(d, ack=False)
            return body
        await self._answer(d, body, "error")
        return body

    async def _finish(self, mid: str, body: bytes) -> bool:
        """Record the outcome; False (logged) when the record cannot be written."""
        try:
            await self._record.finish(mid, body)
        except PublishFailed as exc:
            log.error(
                "outcome of command %s not recorded (%s); not acked, its redelivery is"
                " answered result unknown",
                mid,
                exc,
            )
            return False
        return True

    async def _answer(self, d: Delivery, body: bytes, name: str) -> None:
        """Publish the reply, then ack; unacked (requeued) when the reply did not go out."""
        if await self._reply_raw(d, body, name):
            await _settle(d, ack=True)
        else:
            # Its redelivery is answered from the record.
            await _settle(d, ack=False)

    async def dead_letter(self, d: Delivery, reason: str) -> None:
        """Copy a delivery to ``<ns>.dead`` with the reason, keeping its properties."""
        self.dead_lettered += 1
        queue = command_queue_of(self._names, self._account, d)
        await dead_letter(self._bus, self._names, d, reason, queue)

    async def _reply_raw(self, d: Delivery, body: bytes, name: str) -> bool:
        """Publish a reply; False when the broker did not confirm it (try again later)."""
        if not d.reply_to:
            return True
        msg = OutMessage(
            body=body,
            correlation_id=d.correlation_id,
            type=f"reply.{name}",
            headers={"account": self._account},
            persistent=False,
        )
        try:
            routed = await self._bus.publish("", d.reply_to, msg, mandatory=True)
        except PublishFailed as exc:
            log.warning(
                "reply to %s (correlation_id %s) not confirmed (%s); command requeued,"
                " its redelivery is answered from the record",
                d.reply_to,
                d.correlation_id,
                exc,
            )
            return False
        if not routed:
            log.info("reply queue %s is gone; the caller stopped waiting", d.reply_to)
        return True


async def _settle(d: Delivery, *, ack: bool) -> None:
    """Ack, or requeue; a channel already gone gives the delivery back by itself."""
    try:
        if ack:
            await d.ack()
        else:
            await d.reject(requeue=True)
    except Exception as exc:  # noqa: BLE001 - any client error here means the channel is gone
        log.info("delivery %s not settled (%s); the broker redelivers it", d.message_id, exc)
