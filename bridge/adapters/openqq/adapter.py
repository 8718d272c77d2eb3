"""OpenqqAdapter: the HTTP API process, wired to the bus only.

It subscribes one private queue to the account's events (feeding the contact replica and the
check_event buffer, and ``post_stdout``), talks to the bridge with an RPC client, forwards
post_api from its durable queue, runs the poll_api heartbeat, and serves HTTP. Any number of
adapters can run for one account; post_api delivery stays ordered (single active consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import sys
from collections.abc import Callable

import aiohttp
from aiohttp import web

from bridge.adapters.openqq.app import OpenqqApi
from bridge.adapters.openqq.check_event import EventBuffer
from bridge.adapters.openqq.httpserver import RawTargetRunner
from bridge.adapters.openqq.jsonfmt import legacy
from bridge.adapters.openqq.post_api import STOP_GRACE, PostApiForwarder, http_headers, where
from bridge.adapters.openqq.replica import ContactReplica
from bridge.bus.base import Bus, Delivery, Subscription
from bridge.bus.rpc import RpcClient
from bridge.bus.topology import declare_exchanges
from bridge.config import Settings, parse_hostport
from bridge.core import commands as c
from bridge.core.routing import Names
from bridge.errors import BridgeError
from bridge.metrics import OFF, Metrics
from bridge.netutil import start_site
from bridge.status import (
    AccountStatus,
    AccountTracker,
    BusAccount,
    Observer,
    QueueDepths,
    Readiness,
    bus_connected,
    first_reason,
)

log = logging.getLogger(__name__)

#: Events check_event records (when listed in post_event_list): never login/stop/state/QR.
RECORDABLE_PREFIXES = ("new_", "lose_")
RECORDABLE_SUFFIX = "_property_change"
MAX_LINE = 64 * 1024
MAX_FIELD = 16 * 1024
#: Seconds between two questions to the bridge of a status_accounts entry of unknown state.
ASK_EVERY = 10.0
#: Seconds between two reads of the queue depths for the metrics.
DEPTH_EVERY = 10.0


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OtherAccount(BusAccount):
    """A status_accounts entry: whether its bridge answers tells ``running`` before events do."""

    def __init__(self, tracker: AccountTracker, depths: QueueDepths, rpc: RpcClient) -> None:
        super().__init__(tracker, depths)
        self._rpc = rpc
        self._asked = float("-inf")

    async def status(self) -> AccountStatus:
        """The account now."""
        now = asyncio.get_running_loop().time()
        if self.tracker.state == "unknown" and now - self._asked > ASK_EVERY:
            self._asked = now
            # A bridge serves commands only while its account is running.
            with contextlib.suppress(BridgeError, ConnectionError):
                await self._rpc.call(self.tracker.account, c.GetClientInfo(), timeout=1.0)
                self.tracker.state = "running"
        return await super().status()


class OpenqqAdapter:
    """Runs the Openqq HTTP API for one account."""

    def __init__(
        self,
        bus: Bus,
        names: Names,
        opts: Settings,
        *,
        post_api_retry_wait: float = 0.5,
        metrics: Metrics = OFF,
        state: Callable[[], str | None] = lambda: None,
        ready: Readiness = lambda: None,
    ) -> None:
        self.bus = bus
        self.names = names
        self.opts = opts
        self.metrics = metrics
        self._post_api_retry_wait = post_api_retry_wait
        self.rpc = RpcClient(bus, names)
        self.replica = ContactReplica(self.rpc, opts.account, timeout=opts.rpc_timeout)
        self.buffer = EventBuffer(opts.check_event_list_max_size)
        self.tracker = AccountTracker(opts.account)
        post_api_queue = f"{names.prefix}.{opts.account}.post_api" if opts.post_api else None
        self.depths = QueueDepths(bus, names, opts.account, post_api_queue)
        #: The accounts the status page shows: this one, then ``status_accounts``.
        self.accounts: dict[str, BusAccount] = {
            opts.account: BusAccount(self.tracker, self.depths, state=self._state)
        }
        for other in opts.status_accounts:
            if other not in self.accounts:
                self.accounts[other] = OtherAccount(
                    AccountTracker(other), QueueDepths(bus, names, other, None), self.rpc
                )
        self.observer = Observer(
            metrics,
            first_reason(self._ready, ready),
            lambda: list(self.accounts.values()),
            title=f"openqq-bridge {opts.namespace}",
        )
        self._bridge_state = state
        self.api = OpenqqApi(
            self.rpc, self.replica, self.buffer, opts, observer=self.observer, metrics=metrics
        )
        self._depth_loop: asyncio.Task[None] | None = None
        account = opts.account
        metrics.probe("openqq_check_event_waiters", (account,), self.buffer.waiting)
        metrics.probe(
            "openqq_post_api_backlog", (account,), lambda: self.depths.last.get("post_api") or 0
        )
        for queue in self.depths.wanted():
            metrics.probe("openqq_queue_messages", (account, queue), self._depth_of(queue))
        self.forwarder: PostApiForwarder | None = None
        self._intake: Subscription | None = None
        self._runner: web.AppRunner | None = None
        self._poll: asyncio.Task[None] | None = None
        self.bound: tuple[str, int] | None = None
        self._recorded = frozenset(
            n
            for n in opts.post_event_list
            if opts.post_event
            and (n.startswith(RECORDABLE_PREFIXES) or n.endswith(RECORDABLE_SUFFIX))
        )
        self._stdout_events = frozenset(opts.post_event_list if opts.post_event else ())

    def _depth_of(self, queue: str) -> Callable[[], float]:
        return lambda: self.depths.last.get(queue) or 0

    def _ready(self) -> str | None:
        if not bus_connected(self.bus):
            return "broker connection down"
        if not self.replica.ready.is_set():
            return (
                f"contacts of account {self.opts.account} not loaded yet (is its bridge running?)"
            )
        return None

    def _state(self) -> str | None:
        # The state_change events this adapter saw, in order, say it best. Before the first
        # one: what the owner says (the bridge in `run`, the controller's registry), else a
        # loaded replica means the bridge answered queries, so the account was running.
        if self.tracker.state != "unknown":
            return None
        known = self._bridge_state()
        if known is not None:
            return known
        return "running" if self.replica.ready.is_set() else None

    async def _refresh_depths(self) -> None:
        # For the queue gauges; the status page asks on its own (cached).
        while True:
            await self.depths.get()
            await asyncio.sleep(DEPTH_EVERY)

    async def start(self) -> None:
        """Subscribe, start the RPC client, post_api, poll_api, then listen."""
        await declare_exchanges(self.bus, self.names)
        await self.rpc.start()
        queue = await self.bus.declare_queue("", exclusive=True, auto_delete=True)
        for account in self.accounts:
            await self.bus.bind(queue, self.names.events, f"*.*.{account}")
        self._intake = await self.bus.consume(queue, self._on_event, prefetch=1000)
        self.replica.reload()
        if self.opts.post_api:
            self.forwarder = PostApiForwarder(
                self.bus,
                self.names,
                self.opts,
                self._cast,
                retry_wait=self._post_api_retry_wait,
                metrics=self.metrics,
            )
            await self.forwarder.start()
        if self.opts.poll_api:
            self._poll = asyncio.get_running_loop().create_task(self._poll_loop(self.opts.poll_api))
        if self.metrics.enabled:
            self._depth_loop = asyncio.get_running_loop().create_task(self._refresh_depths())
        await self._listen()

    async def _listen(self) -> None:
        host, port = parse_hostport(self.opts.listen, "listen")
        # Legacy callers send whole messages in GET query strings.
        self._runner, self.bound = await start_site(
            self.api.app(),
            host,
            port,
            "listen",
            RawTargetRunner,
            max_line_size=MAX_LINE,
            max_field_size=MAX_FIELD,
            shutdown_timeout=STOP_GRACE,
        )
        log.info(
            "Openqq API on http://%s:%d/openqq/ for account %s", *self.bound, self.opts.account
        )
        if not is_loopback(host) and not self.opts.access_token:
            log.warning(
                "listening on %s without an access token: anyone who reaches this port can"
                " send messages as the account (set OPENQQ_ACCESS_TOKEN)",
                host,
            )

    async def stop(self) -> None:
        """Answer pending calls, stop serving, then post_api, the heartbeat, subscriptions."""
        # Callers waiting for the bridge are answered now (result unknown), not after
        # rpc_timeout; requests still in progress after STOP_GRACE are cut.
        self.rpc.abort_pending()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in (self._poll, self._depth_loop):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.forwarder is not None:
            await self.forwarder.stop()
        if self._intake is not None:
            await self._intake.cancel()
            self._intake = None
        await self.replica.close()
        await self.rpc.close()

    async def _cast(self, cmd: c.Command, message_id: str) -> None:
        await self.rpc.cast(self.opts.account, cmd, message_id=message_id)

    async def _on_event(self, d: Delivery) -> None:
        await d.ack()
        kind = d.type or ".".join(d.routing_key.split(".")[:2])
        account = d.routing_key.rpartition(".")[2]
        if account != self.opts.account:
            # Another account of status_accounts: only its status page entry.
            other = self.accounts.get(account)
            if other is not None:
                other.tracker.on_event(kind, d.body)
            return
        self.replica.on_event(kind, d.body)
        self.tracker.on_event(kind, d.body)
        post_type, _, name = kind.partition(".")
        message = post_type in ("receive_message", "send_message")
        if message or name in self._recorded:
            self.buffer.append(legacy(d.body))
        if self.opts.post_stdout and (message or name in self._stdout_events):
            sys.stdout.buffer.write(legacy(d.body) + b"\n")
            sys.stdout.flush()

    async def _poll_loop(self, url: str) -> None:
        timeout = aiohttp.ClientTimeout(total=120, sock_connect=10)
        async with aiohttp.ClientSession(
            timeout=timeout, headers=http_headers(), skip_auto_headers=("Accept",)
        ) as session:
            failing = False
            while True:
                try:
                    async with session.get(url, max_redirects=7) as r:
                        await r.read()
                    failing = False
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # One warning per outage, not one per heartbeat.
                    if not failing:
                        log.warning(
                            "poll_api %s failed: %s", where(url), str(exc) or type(exc).__name__
                        )
                    failing = True
                await asyncio.sleep(self.opts.poll_interval)
