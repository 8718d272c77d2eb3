"""Bridge: one upstream account <-> the bus; the wiring of outbox, executor, record and role.

A bridge first waits for the account's active role (:mod:`bridge.role`): a standby runs no
upstream, publishes nothing and consumes no command. Once active it declares the topology,
reads the command record to its end (:mod:`bridge.store`), runs the upstream, whose events are
applied to the contact book, written to the client files, shown (ShowMsg) and put in the
outbox (:mod:`bridge.outbox`), and, once the account is running, serves commands
(:class:`bridge.bus.commands.CommandServer` around :class:`bridge.executor.Executor`).

Losing the role (the broker connection dropped) stops publishing and executing at once. If
the role comes back within ``ROLE_GRACE`` (nobody else took it: a short broker outage), the
bridge goes on where it was; otherwise another bridge is active, and this one stops its
upstream, drops what it had not published and returns with ``demoted`` set (the process starts
over as a standby). A clean stop with standbys waiting hands over: the stop of the upstream is
not published (the account goes on elsewhere), the role is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.bus.base import Bus
from bridge.bus.commands import CommandServer
from bridge.bus.publisher import EventPublisher
from bridge.bus.topology import declare_account
from bridge.clientfiles import ClientFiles
from bridge.config import Settings
from bridge.core import events as ev
from bridge.core.contacts import ContactBook
from bridge.core.ports import Upstream
from bridge.core.routing import Names, event_key
from bridge.executor import Executor, active_id
from bridge.metrics import OFF, Metrics
from bridge.outbox import Outbox
from bridge.role import AlwaysActive, Role
from bridge.store import CommandRecord, SqliteRecord

log = logging.getLogger(__name__)

#: Seconds between answering stop_client/relogin and doing it (the reply goes out first).
CONTROL_DELAY = 3.0
#: Seconds a bridge that lost its role waits to get it back before it steps down for good.
ROLE_GRACE = 15.0


class Bridge:
    """Runs one account: ``await bridge.run()`` until stopped (or demoted to standby)."""

    def __init__(
        self,
        bus: Bus,
        names: Names,
        upstream: Upstream,
        options: Settings,
        *,
        record: CommandRecord | None = None,
        role: Role | None = None,
        files: ClientFiles | None = None,
        show: Callable[[ev.Event], None] | None = None,
        control_delay: float = CONTROL_DELAY,
        role_grace: float = ROLE_GRACE,
        metrics: Metrics = OFF,
    ) -> None:
        self.bus = bus
        self.names = names
        self.upstream = upstream
        self.opts = options
        self.account = options.account
        self.contacts = ContactBook()
        self.state = "init"
        self.ready = asyncio.Event()
        self.started = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.role: Role = role or AlwaysActive()
        self.role_grace = role_grace
        #: Set when another bridge took the role over: this one stopped without a stop.
        self.demoted = False
        self._files = files
        self._show = show
        self.metrics = metrics
        metrics.state_probe(self.account, lambda: self.state)
        self._msg_in = metrics.messages.labels(self.account, "in")
        self._msg_out = metrics.messages.labels(self.account, "out")
        self._risk = metrics.risk_control.labels(self.account)
        self.outbox = Outbox(
            EventPublisher(bus, names, options.account),
            size=options.event_buffer,
            wait=options.buffer_wait,
            metrics=metrics,
            account=options.account,
        )
        self.record: CommandRecord = record or SqliteRecord(None)
        self.executor = Executor(
            upstream,
            self.contacts,
            options,
            report=self._enqueue,
            ready=self.ready,
            state=lambda: self.state,
            request_stop=self.request_stop,
            spawn=self._spawn,
            control_delay=control_delay,
            metrics=metrics,
        )
        self.server = self._command_server()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._quiet = False
        #: (routing key, message_id) of the events published once stopping began: the
        #: reports of the stop, which a ``run`` process posts to post_api before it exits.
        self.stop_reports: list[tuple[str, str]] = []

    def _command_server(self) -> CommandServer:
        return CommandServer(
            self.bus,
            self.names,
            self.account,
            self.executor.execute,
            self.record,
            prefetch=self.opts.prefetch,
            metrics=self.metrics,
        )

    # --- events ---------------------------------------------------------------------------
    async def emit(self, event: ev.Event) -> None:
        """Take an upstream event: BufferFull if no room frees up within buffer_wait."""
        await self._enqueue(event, None)

    async def _enqueue(self, event: ev.Event, done: asyncio.Future[None] | None) -> None:
        if self._quiet:
            # Handing over or demoted: the account goes on on another bridge.
            self.outbox.discarded += 1
            if done is not None and not done.done():
                done.set_result(None)
            return
        mid = await self.outbox.put(event, done)
        if self._stopping:
            self.stop_reports.append((event_key(event.KIND, self.account), mid))
        self._observe(event)

    def _observe(self, event: ev.Event) -> None:
        kind = event.KIND
        if kind[0] == "r":  # receive_message.*
            self._msg_in.inc()
        elif kind[0] == "s":  # send_message.*
            self._msg_out.inc()
        else:
            # Messages change no contact and no client file: only other events go there
            # (the contacts' pattern match alone cost a message 3.5 us).
            if isinstance(event, ev.RiskControl):
                self._risk.inc()
            if isinstance(event, ev.StateChange):
                self._on_state(event.params[1])
            else:
                self.contacts.apply(event)
            if self._files is not None:
                self._files.on_event(event)
        if self._show is not None:
            self._show(event)

    def _on_state(self, new: str) -> None:
        old, self.state = self.state, new
        log.info("account %s: state %s -> %s", self.account, old, new)
        if new == "running":
            snap = self.upstream.snapshot()
            self.contacts.load(snap.user, snap.friends, snap.groups, snap.discusses)
            self.ready.set()
        else:
            self.ready.clear()

    # --- running --------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _wait_role(self) -> bool:
        """Wait until this bridge is active; False when a stop came first."""
        await self.role.join()
        if not self.role.holds():
            log.info(
                "bridge %s is standby for account %s: waiting for the active one to go",
                active_id(),
                self.account,
            )
        acquire = self._spawn(self.role.acquire(), "acquire")
        stop = self._spawn(self.stop_requested.wait(), "stop-standby")
        await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        acquire.cancel()
        stop.cancel()
        if not self.role.holds():
            await self.role.release()
            return False
        log.info("bridge %s is now active for account %s", active_id(), self.account)
        return True

    async def run(self) -> None:
        """Wait for the role, declare, read the record, log in, serve; return when stopped."""
        if not await self._wait_role():
            return
        await declare_account(self.bus, self.names, self.account, self.opts.queue_type)
        await self.record.load()
        publisher = self._spawn(self.outbox.run(), "publish")
        upstream = self._spawn(self.upstream.run(self.emit), "upstream")
        stop = self._spawn(self.stop_requested.wait(), "stop")
        try:
            ready = self._spawn(self.ready.wait(), "ready")
            lost = self._spawn(self.role.wait_lost(), "lost")
            await asyncio.wait({ready, upstream, stop, lost}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            while not (upstream.done() or stop.done()):
                if self.role.holds() and self.ready.is_set() and not self.started.is_set():
                    await self.server.start()
                    self.started.set()
                    log.info("account %s running: serving commands", self.account)
                if not self.role.holds() and not await self._lost_role(upstream, stop):
                    return
                lost = self._spawn(self.role.wait_lost(), "lost")
                ready = self._spawn(self.ready.wait(), "ready")
                waits = {upstream, stop, lost} | ({ready} if not self.started.is_set() else set())
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                lost.cancel()
                ready.cancel()
            if upstream.done() and not upstream.cancelled() and upstream.exception():
                raise upstream.exception()  # type: ignore[misc]
        finally:
            await self._shutdown(upstream, publisher, stop)

    async def _lost_role(self, upstream: asyncio.Task[Any], stop: asyncio.Task[Any]) -> bool:
        """Stop publishing and executing; True when the role came back within the grace."""
        log.warning(
            "bridge %s lost the active role for account %s (broker connection lost):"
            " not publishing or executing; waiting %gs to get it back",
            active_id(),
            self.account,
            self.role_grace,
        )
        self.outbox.hold()
        await self.server.stop(grace=2.0)
        self.started.clear()
        if not await self._reacquire(upstream, stop):
            if upstream.done() or stop.done():
                return True
            log.warning(
                "bridge %s is standby for account %s: another bridge took over;"
                " stopping the upstream, %d unpublished event(s) dropped",
                active_id(),
                self.account,
                self.outbox.discard(),
            )
            self.demoted = True
            self._quiet = True
            return False
        if self.role.holds():
            log.info("bridge %s is active again for account %s", active_id(), self.account)
            # Another bridge may have written to the record meanwhile.
            await self.record.load()
            self.server = self._command_server()
            self.outbox.release()
        return True

    async def _reacquire(self, upstream: asyncio.Task[Any], stop: asyncio.Task[Any]) -> bool:
        """Wait for the role; False when the broker is back for ``role_grace`` without it."""
        acquire = self._spawn(self.role.acquire(), "reacquire")
        try:
            while True:
                # However long the broker is away: nobody else can be active through it.
                back = self._spawn(self.role.wait_candidate(), "candidate")
                await asyncio.wait(
                    {acquire, back, upstream, stop}, return_when=asyncio.FIRST_COMPLETED
                )
                back.cancel()
                if acquire.done() or upstream.done() or stop.done():
                    return acquire.done()
                # Connected again: the token comes within seconds unless another bridge has it.
                await asyncio.wait(
                    {acquire, upstream, stop},
                    timeout=self.role_grace,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if acquire.done() or upstream.done() or stop.done():
                    return acquire.done()
                back = self._spawn(self.role.wait_candidate(), "candidate")
                await asyncio.sleep(0)
                if back.done():
                    return False
                back.cancel()  # the connection dropped again meanwhile: keep waiting
        finally:
            acquire.cancel()

    async def _shutdown(
        self,
        upstream: asyncio.Task[Any],
        publisher: asyncio.Task[Any],
        stop: asyncio.Task[Any],
    ) -> None:
        self._stopping = True
        stop.cancel()
        await self.server.stop()
        if not self.demoted and self.role.holds() and await self.role.standbys() > 0:
            # Hand over: the account goes on on a standby, so its stop is not published.
            self._quiet = True
            log.info(
                "bridge %s hands account %s over to a standby (its stop is not published)",
                active_id(),
                self.account,
            )
        if not upstream.done():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.upstream.stop()
            try:
                async with asyncio.timeout(5):
                    await upstream
            except (TimeoutError, asyncio.CancelledError):
                upstream.cancel()
            except Exception:
                log.exception("upstream failed while stopping")
        if self.demoted:
            self.outbox.discard()
        else:
            await self.outbox.drain(10)
        publisher.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(publisher, *self._tasks, return_exceptions=True)
        await self.outbox.close()
        if not self.demoted:
            # Last: every event of this bridge is confirmed before a standby may publish.
            await self.role.release()

    def request_stop(self) -> None:
        """Stop gracefully (SIGINT/SIGTERM, stop_client)."""
        self.stop_requested.set()
