"""OpenqqAdapter: the HTTP API process, wired to the bus only.

It subscribes one private queue to the account's events (feeding the contact replica and the
check_event buffer, and ``post_stdout``), talks to the bridge with an RPC client, forwards
post_api from its durable queue, runs the poll_api heartbeat, and serves HTTP. Any number of
adapters can run for one account; post_api delivery stays ordered (single active consumer).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web

from bridge.adapters.openqq.app import OpenqqApi
from bridge.adapters.openqq.check_event import EventBuffer
from bridge.adapters.openqq.context import ApiOptions
from bridge.adapters.openqq.httpserver import RawTargetRunner
from bridge.adapters.openqq.jsonfmt import legacy
from bridge.adapters.openqq.post_api import (
    STOP_GRACE,
    PostApiForwarder,
    PostApiOptions,
    http_headers,
    where,
)
from bridge.adapters.openqq.replica import ContactReplica
from bridge.bus.base import Bus, Delivery, Subscription
from bridge.bus.rpc import RpcClient
from bridge.bus.topology import declare_exchanges
from bridge.config import DEFAULT_EVENTS
from bridge.core import commands as c
from bridge.core.routing import Names
from bridge.netutil import start_site

log = logging.getLogger(__name__)

#: Events check_event records (when listed in post_event_list): never login/stop/state/QR.
RECORDABLE_PREFIXES = ("new_", "lose_")
RECORDABLE_SUFFIX = "_property_change"
MAX_LINE = 64 * 1024
MAX_FIELD = 16 * 1024


@dataclass(frozen=True, slots=True)
class AdapterOptions:
    """Everything the adapter process needs besides the bus."""

    account: str = "default"
    listen: tuple[str, int] = ("127.0.0.1", 5000)
    access_token: str | None = None
    max_request_bytes: int = 1 << 20
    rpc_timeout: float = 30.0
    shutup_unit: Literal["seconds", "minutes"] = "seconds"
    check_event_size: int = 20
    check_event_timeout: float = 30.0
    post_api: str | None = None
    post_event: bool = True
    post_event_list: Sequence[str] = field(default=DEFAULT_EVENTS)
    post_stdout: bool = False
    post_api_retry_seconds: float = 600.0
    post_api_reject_retries: int = 3
    post_api_timeout: float = 120.0
    post_api_retry_wait: float = 0.5
    poll_api: str | None = None
    poll_interval: float = 5.0


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenqqAdapter:
    """Runs the Openqq HTTP API for one account."""

    def __init__(self, bus: Bus, names: Names, opts: AdapterOptions) -> None:
        self.bus = bus
        self.names = names
        self.opts = opts
        self.rpc = RpcClient(bus, names)
        self.replica = ContactReplica(self.rpc, opts.account, timeout=opts.rpc_timeout)
        self.buffer = EventBuffer(opts.check_event_size)
        self.api = OpenqqApi(
            self.rpc,
            self.replica,
            self.buffer,
            ApiOptions(
                account=opts.account,
                access_token=opts.access_token,
                check_event_timeout=opts.check_event_timeout,
                rpc_timeout=opts.rpc_timeout,
                shutup_unit=opts.shutup_unit,
                max_request_bytes=opts.max_request_bytes,
            ),
        )
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

    async def start(self) -> None:
        """Subscribe, start the RPC client, post_api, poll_api, then listen."""
        await declare_exchanges(self.bus, self.names)
        await self.rpc.start()
        queue = await self.bus.declare_queue("", exclusive=True, auto_delete=True)
        await self.bus.bind(queue, self.names.events, f"*.*.{self.opts.account}")
        self._intake = await self.bus.consume(queue, self._on_event, prefetch=1000)
        self.replica.reload()
        if self.opts.post_api:
            self.forwarder = PostApiForwarder(
                self.bus,
                self.names,
                self.opts.account,
                PostApiOptions(
                    url=self.opts.post_api,
                    post_event=self.opts.post_event,
                    post_event_list=self.opts.post_event_list,
                    retry_seconds=self.opts.post_api_retry_seconds,
                    reject_retries=self.opts.post_api_reject_retries,
                    timeout=self.opts.post_api_timeout,
                    retry_wait=self.opts.post_api_retry_wait,
                ),
                self._cast,
            )
            await self.forwarder.start()
        if self.opts.poll_api:
            self._poll = asyncio.get_running_loop().create_task(self._poll_loop(self.opts.poll_api))
        await self._listen()

    async def _listen(self) -> None:
        host, port = self.opts.listen
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
        if self._poll is not None:
            self._poll.cancel()
            await asyncio.gather(self._poll, return_exceptions=True)
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
        self.replica.on_event(kind, d.body)
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
