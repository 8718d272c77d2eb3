"""ContactReplica: the adapter's copy of an account's contacts, built from the bus only.

At start, and again after every ``login`` event (ids may change on a QR login), it reads the
account's user, friends, groups and discuss groups with query commands; in between it applies
the contact events (new_*, lose_*, *_property_change) it receives on ``<ns>.events``. It is as
current as the event stream: an event is applied when the adapter receives it, milliseconds
after the bridge published it. Until the first load succeeds (retried with backoff) the adapter
asks the bridge directly.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from bridge.bus.rpc import RpcClient
from bridge.core import commands as c
from bridge.core.codec import decode_event
from bridge.core.contacts import ContactBook
from bridge.core.events import Login, StateChange
from bridge.core.model import Discuss, Friend, Group, User
from bridge.errors import BridgeError

log = logging.getLogger(__name__)


class ContactReplica:
    """A :class:`ContactBook` kept from the bus."""

    def __init__(self, rpc: RpcClient, account: str, *, timeout: float = 30.0) -> None:
        self._rpc = rpc
        self._account = account
        self._timeout = timeout
        self.book = ContactBook()
        self.ready = asyncio.Event()
        self._loading: asyncio.Task[None] | None = None

    async def _get(self, cmd: c.Command) -> bytes:
        return await self._rpc.call(self._account, cmd, timeout=self._timeout)

    async def _fetch(self) -> tuple[User, list[Friend], list[Group], list[Discuss]]:
        dec = msgspec.json.decode
        return (
            dec(await self._get(c.GetUserInfo()), type=User),
            dec(await self._get(c.GetFriendInfo()), type=list[Friend]),
            dec(await self._get(c.GetGroupInfo()), type=list[Group]),
            dec(await self._get(c.GetDiscussInfo()), type=list[Discuss]),
        )

    async def load(self) -> None:
        """Read every contact from the bridge (retried with backoff until it answers)."""
        snap = None
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((BridgeError, ConnectionError, msgspec.DecodeError)),
            wait=wait_exponential_jitter(multiplier=0.2, max=10.0, jitter=0.2),
            reraise=True,
        ):
            with attempt:
                snap = await self._fetch()
        assert snap is not None
        self.book.load(*snap)
        self.ready.set()
        log.info(
            "contact replica of %s loaded: %d friends, %d groups",
            self._account,
            len(self.book.friends),
            len(self.book.groups),
        )

    def reload(self) -> None:
        """Start a (re)load in the background, replacing one already running."""
        if self._loading is not None:
            self._loading.cancel()
        self._loading = asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> None:
        try:
            await self.load()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("contact replica of %s could not be loaded", self._account)

    def on_event(self, kind: str, body: bytes) -> None:
        """Apply one event from the bus; a login makes the replica reload."""
        if not kind.startswith("event."):
            return
        try:
            event = decode_event(kind, body)
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
            log.debug("event %s not understood by the replica; ignored", kind)
            return
        if isinstance(event, Login) or (
            isinstance(event, StateChange) and event.params[1] == "running" and self.ready.is_set()
        ):
            self.reload()
            return
        self.book.apply(event)

    async def close(self) -> None:
        """Stop a load in progress."""
        if self._loading is not None:
            self._loading.cancel()
            await asyncio.gather(self._loading, return_exceptions=True)
