"""Registry: every account of the namespace the controller knows, local or not, with state.

An account is known from the moment this controller starts its bridge, or when the bus
first says it exists: a presence message (``presence.bridge.<account>``, every 10 s from
every bridge, see bridge.core.presence) or an ``event.state_change.<account>``. Its state
follows state_change events and presence; the last login QR code comes from
``event.input_qrcode`` and is dropped once the account is running. A remote account (one
this controller does not supervise) shows ``stop`` as soon as its bridge says so and is
forgotten when unheard for three presence intervals (30 s; a standby bridge that takes the
account over speaks up before that); a local one when ``stop_client`` stops it or its
bridge exits 0.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from bridge.bus.base import Bus, Delivery, Subscription
from bridge.core.codec import decode_event
from bridge.core.events import InputQrcode, StateChange
from bridge.core.presence import PRESENCE_INTERVAL, PRESENCE_KIND, PRESENCE_MISSES, Presence
from bridge.core.routing import Names, valid_name

log = logging.getLogger(__name__)

_PRESENCE = msgspec.json.Decoder(Presence)


@dataclass(slots=True)
class Account:
    """What the controller knows of one account."""

    name: str
    local: bool
    state: str = "init"
    presence: Presence | None = None
    last_seen: float = 0.0
    qrcode: bytes | None = None


Hook = Callable[[str], Awaitable[None]]


class Registry:
    """The accounts of one namespace; ``appeared``/``forgotten`` run as they come and go."""

    def __init__(self, bus: Bus, names: Names, appeared: Hook, forgotten: Hook) -> None:
        self._bus = bus
        self._names = names
        self._appeared = appeared
        self._forgotten = forgotten
        self.accounts: dict[str, Account] = {}
        self._sub: Subscription | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Listen for presence, state changes and QR codes of every account."""
        queue = await self._bus.declare_queue("", exclusive=True, auto_delete=True)
        for key in (f"{PRESENCE_KIND}.*", "event.state_change.*", "event.input_qrcode.*"):
            await self._bus.bind(queue, self._names.events, key)
        self._sub = await self._bus.consume(queue, self._on_message, prefetch=100)
        self._expiry = asyncio.get_running_loop().create_task(self._expire())

    async def close(self) -> None:
        """Stop listening."""
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.gather(self._expiry, return_exceptions=True)
        if self._sub is not None:
            await self._sub.cancel()
            self._sub = None

    async def add(self, name: str, *, local: bool) -> Account:
        """Know ``name`` (its single-account API is ready when this returns)."""
        async with self._lock:
            acc = self.accounts.get(name)
            if acc is None:
                acc = Account(name, local, last_seen=time.monotonic())
                # Listed once its API is up, so check_client never shows a half-made client.
                await self._appeared(name)
                self.accounts[name] = acc
                log.info("client %s known (%s)", name, "local" if local else "on the bus")
            acc.local = acc.local or local
            return acc

    async def forget(self, name: str) -> None:
        """Forget ``name`` and drop its single-account API."""
        async with self._lock:
            if self.accounts.pop(name, None) is not None:
                await self._forgotten(name)
                log.info("client %s forgotten", name)

    async def _on_message(self, d: Delivery) -> None:
        await d.ack()
        words = d.routing_key.split(".")
        if len(words) != 3 or not valid_name(words[2]):
            return
        kind, name = ".".join(words[:2]), words[2]
        try:
            if kind == PRESENCE_KIND:
                await self._on_presence(name, _PRESENCE.decode(d.body))
                return
            event = decode_event(kind, d.body)
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
            log.debug("%s not understood by the controller; ignored", d.routing_key)
            return
        if isinstance(event, StateChange):
            await self._on_state(name, event.params[1])
        elif isinstance(event, InputQrcode) and len(event.params) > 1:
            acc = await self.add(name, local=False)
            try:
                acc.qrcode = base64.b64decode(event.params[1])
            except (binascii.Error, ValueError):
                log.warning("input_qrcode of %s carried no valid base64 PNG", name)

    async def _on_presence(self, name: str, p: Presence) -> None:
        acc = self.accounts.get(name)
        if acc is None:
            if p.state == "stop":
                return
            acc = await self.add(name, local=False)
        acc.presence, acc.last_seen = p, time.monotonic()
        self._set_state(acc, p.state)

    async def _on_state(self, name: str, state: str) -> None:
        acc = self.accounts.get(name)
        if acc is None:
            if state == "stop":
                return
            acc = await self.add(name, local=False)
        acc.last_seen = time.monotonic()
        self._set_state(acc, state)

    @staticmethod
    def _set_state(acc: Account, state: str) -> None:
        acc.state = state
        if state in ("running", "stop", "init"):
            acc.qrcode = None

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_INTERVAL / 2)
            now = time.monotonic()
            for acc in list(self.accounts.values()):
                interval = acc.presence.interval if acc.presence else PRESENCE_INTERVAL
                if not acc.local and now - acc.last_seen > interval * PRESENCE_MISSES:
                    log.info("client %s unheard for %.0fs", acc.name, now - acc.last_seen)
                    await self.forget(acc.name)
