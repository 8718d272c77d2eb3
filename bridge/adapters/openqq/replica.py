"""ContactReplica: the adapter's copy of an account's contacts, built from the bus only.

At start, and again after every ``login`` (ids may change on a QR login) and every switch to
``running``, it reads the account's user, then its friends, groups and discuss groups page by
page (``get_contacts_page``: no answer near the broker's message size limit, one page decoded
at a time, each group passed through :func:`compact_group` before it is kept). In between it
applies the contact events (new_*, lose_*, *_property_change) it receives on ``<ns>.events``.

Consistency while pages load: every contact event received after a load began is also kept
aside and applied once the last page is in, so changes to pages already read are not lost
(the bridge changes its book before it publishes the event, so each event is either in the
pages read after it or kept aside; applying one twice changes nothing). Page cursors are the
bridge's stamps, which stay right while contacts before them are removed. A page of another
``generation`` (the bridge reloaded its book) starts the load again. A bridge too old for pages
(it answers ``invalid command``) is read with the whole-list commands instead.

Every page is one RPC bounded by the RPC timeout and retried with backoff until it is
answered. Large loads log their progress every few seconds. Until the first load succeeds
the adapter asks the bridge directly.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Hashable
from typing import Final, TypeVar

import msgspec
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from bridge.bus.rpc import RpcClient
from bridge.core import commands as c
from bridge.core import events as ev
from bridge.core.codec import decode_event
from bridge.core.contacts import ContactBook, whole_contact
from bridge.core.events import Login, StateChange
from bridge.core.members import compact_group
from bridge.core.model import Discuss, Friend, Group, User
from bridge.errors import BridgeError

log = logging.getLogger(__name__)

P = TypeVar("P", c.FriendPage, c.GroupPage, c.DiscussPage)

#: Seconds between two progress lines of a load.
PROGRESS_EVERY: Final = 5.0
#: Contact events kept aside during one load; beyond, the load starts again.
MAX_HELD: Final = 100_000

_STATUS: Final = msgspec.json.Decoder(c.StatusReply)
_RETRYABLE: Final = (BridgeError, ConnectionError, msgspec.DecodeError)


class _Restart(Exception):
    """The load must start again: the bridge reloaded its book while its pages were read."""


class _NoPages(Exception):
    """The bridge does not know get_contacts_page (an older version)."""


def _subject(event: ev.Event, unique: Callable[[], int]) -> Hashable:
    """What an event sets as a whole: a later event on the same subject supersedes it.

    Events that carry a whole friend, group or discuss group (or its removal) supersede the
    earlier ones of that contact, so a burst of member joins keeps one copy of the group;
    other events each keep their place.
    """
    change = whole_contact(event)
    if change is None:
        return unique()
    return (type(change.contact).__name__, change.contact.id)


class _Held:
    """Contact events received while a load runs, applied to the new book once it is in."""

    def __init__(self) -> None:
        self._events: dict[Hashable, ev.Event] = {}
        self._counter = itertools.count()

    def add(self, event: ev.Event) -> None:
        subject = _subject(event, lambda: next(self._counter))
        # Moved to the end: it takes the place of the latest change of its subject.
        self._events.pop(subject, None)
        self._events[subject] = event

    def __len__(self) -> int:
        return len(self._events)

    def apply_to(self, book: ContactBook) -> None:
        for event in self._events.values():
            book.apply(event)


class _Progress:
    """Counts what a load read, and logs it every PROGRESS_EVERY seconds."""

    def __init__(self, account: str, every: float) -> None:
        self.account = account
        self._every = every
        loop = asyncio.get_running_loop()
        self.start = loop.time()
        self._logged = self.start
        self.pages = 0
        self.read = {"friend": 0, "group": 0, "discuss": 0}
        self.totals = {"friend": 0, "group": 0, "discuss": 0}
        self.members = 0
        self.members_total = 0

    def page(self, page: c.FriendPage | c.GroupPage | c.DiscussPage) -> None:
        kind = page.__struct_config__.tag
        assert isinstance(kind, str)
        self.pages += 1
        self.read[kind] += len(page.items)
        self.totals[kind] = page.total
        if isinstance(page, c.GroupPage):
            self.members += sum(len(g.member) for g in page.items)
            self.members_total = page.members
        now = asyncio.get_running_loop().time()
        if now - self._logged >= self._every:
            self._logged = now
            self.log(now)

    def log(self, now: float) -> None:
        total = max(self.members_total, 1)
        log.info(
            "contact replica of %s: %s of %s members loaded (%d %%), %s of %s groups,"
            " %s of %s friends, %.0f s",
            self.account,
            f"{self.members:,}",
            f"{self.members_total:,}",
            min(100, self.members * 100 // total),
            f"{self.read['group']:,}",
            f"{self.totals['group']:,}",
            f"{self.read['friend']:,}",
            f"{self.totals['friend']:,}",
            now - self.start,
        )


class ContactReplica:
    """A :class:`ContactBook` kept from the bus."""

    def __init__(
        self,
        rpc: RpcClient,
        account: str,
        *,
        timeout: float = 30.0,
        page_entries: int = c.PAGE_ENTRIES,
        progress_every: float = PROGRESS_EVERY,
    ) -> None:
        self._rpc = rpc
        self._account = account
        self._timeout = timeout
        self._page_entries = page_entries
        self._progress_every = progress_every
        self.book = ContactBook()
        self.ready = asyncio.Event()
        #: Counts the changes to the book (a load, an event applied): cached answers name it.
        self.revision = 0
        self._answers: dict[str, tuple[int, bytes]] = {}
        self._loading: asyncio.Task[None] | None = None
        #: Contact events received since the running load began (None: no load runs).
        self._held: _Held | None = None

    async def _get(self, cmd: c.Command) -> bytes:
        return await self._rpc.call(self._account, cmd, timeout=self._timeout)

    async def _answer(self, cmd: c.Command, decode: Callable[[bytes], object]) -> object:
        """The decoded answer to one command; each try bounded by the timeout, retried."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_RETRYABLE),
            wait=wait_exponential_jitter(multiplier=0.2, max=10.0, jitter=0.2),
            reraise=True,
        ):
            with attempt:
                return decode(await self._get(cmd))
        raise AssertionError("unreachable: AsyncRetrying re-raises the last failure")

    async def _page(self, cls: type[P], cmd: c.GetContactsPage) -> P:
        decoder = msgspec.json.Decoder(cls)

        def decode(body: bytes) -> P:
            try:
                page: P = decoder.decode(body)
            except msgspec.ValidationError:
                # An older bridge refuses the command (code -10): not worth retrying.
                status = _status(body)
                if status is not None and status.code == c.CODE_INVALID_COMMAND:
                    raise _NoPages(status.status) from None
                raise
            return page

        got = await self._answer(cmd, decode)
        assert isinstance(got, cls)
        return got

    async def _read_kind(
        self,
        cls: type[P],
        kind: c.ContactKind,
        progress: _Progress,
        generation: list[str],
    ) -> list[P]:
        """Every page of one kind; _Restart when one is of another generation than the first."""
        pages: list[P] = []
        after = 0
        while True:
            cmd = c.GetContactsPage(kind=kind, after=after, max_entries=self._page_entries)
            page = await self._page(cls, cmd)
            if not generation:
                generation.append(page.generation)
            elif page.generation != generation[0]:
                msg = "the bridge reloaded its contacts while they were read"
                raise _Restart(msg)
            if isinstance(page, c.GroupPage):
                # Kept compact from the start: the page's own lists are dropped right away.
                page.items = [compact_group(g) for g in page.items]
            progress.page(page)
            pages.append(page)
            if page.next is None:
                return pages
            after = page.next

    async def _fetch_pages(
        self, progress: _Progress
    ) -> tuple[User, list[Friend], list[Group], list[Discuss]]:
        user = await self._answer(c.GetUserInfo(), _decode_user)
        assert isinstance(user, User)
        generation: list[str] = []
        friends = await self._read_kind(c.FriendPage, "friend", progress, generation)
        groups = await self._read_kind(c.GroupPage, "group", progress, generation)
        discusses = await self._read_kind(c.DiscussPage, "discuss", progress, generation)
        return (
            user,
            [f for p in friends for f in p.items],
            [g for p in groups for g in p.items],
            [d for p in discusses for d in p.items],
        )

    async def _fetch_whole(self) -> tuple[User, list[Friend], list[Group], list[Discuss]]:
        """The whole lists in one answer each, from a bridge too old for pages."""
        user = await self._answer(c.GetUserInfo(), _decode_user)
        friends = await self._answer(c.GetFriendInfo(), _decoder(list[Friend]))
        groups = await self._answer(c.GetGroupInfo(), _decoder(list[Group]))
        discusses = await self._answer(c.GetDiscussInfo(), _decoder(list[Discuss]))
        assert isinstance(user, User)
        assert isinstance(friends, list)
        assert isinstance(groups, list)
        assert isinstance(discusses, list)
        return user, friends, [compact_group(g) for g in groups], discusses

    async def load(self) -> None:
        """Read every contact from the bridge, page by page (each retried until answered)."""
        began = asyncio.get_running_loop().time()
        while True:
            # Events from here on are held: the pages may have been read before them.
            held = self._held = _Held()
            progress = _Progress(self._account, self._progress_every)
            try:
                snap = await self._fetch_pages(progress)
            except _Restart as exc:
                log.info("contact replica of %s: %s; reading again", self._account, exc)
                continue
            except _NoPages as exc:
                log.warning(
                    "contact replica of %s: the bridge does not page contacts (%s);"
                    " reading the whole lists",
                    self._account,
                    exc,
                )
                snap = await self._fetch_whole()
            finally:
                # A load that failed or was cancelled holds nothing (a newer one may, though).
                if self._held is held:
                    self._held = None
            break
        # No await from here on: no event can come between the pages and the held events.
        self.book.load(*snap)
        held.apply_to(self.book)
        self.revision += 1
        self.ready.set()
        members = sum(len(g.member) for g in snap[2])
        log.info(
            "contact replica of %s loaded: %d friends, %d groups (%s members), %d discuss"
            " groups in %.1f s (%d pages, %d held events applied)",
            self._account,
            len(self.book.friends),
            len(self.book.groups),
            f"{members:,}",
            len(self.book.discusses),
            asyncio.get_running_loop().time() - began,
            progress.pages,
            len(held),
        )

    def answer(self, key: str, build: Callable[[], bytes]) -> bytes:
        """What ``build`` gives for the book as it is now: built once per change, then kept.

        Reads of a whole list (get_friend_info, get_group_basic_info) are the adapter's most
        frequent requests; between two contact events their bytes do not change.
        """
        kept = self._answers.get(key)
        if kept is not None and kept[0] == self.revision:
            return kept[1]
        body = build()
        self._answers[key] = (self.revision, body)
        return body

    async def loaded(self, wait: float) -> bool:
        """Whether the replica is ready, waiting up to ``wait`` seconds for a load under way.

        An answer too big for one message (a whole ``get_group_info`` of a large account)
        can only come from the replica: right after a start it is worth waiting for.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        # A login while it waits replaces the load (reload() cancels it): follow the new one.
        while not self.ready.is_set():
            loading, left = self._loading, deadline - loop.time()
            if loading is None or loading.done() or left <= 0:
                return False
            ready = loop.create_task(self.ready.wait())
            try:
                await asyncio.wait({ready, loading}, timeout=left, return_when="FIRST_COMPLETED")
            finally:
                ready.cancel()
        return True

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
        """Apply one event from the bus; a login or a switch to running makes it reload."""
        if not kind.startswith("event."):
            return
        try:
            event = decode_event(kind, body)
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
            log.debug("event %s not understood by the replica; ignored", kind)
            return
        if isinstance(event, Login) or (
            isinstance(event, StateChange) and event.params[1] == "running"
        ):
            # The bridge reloads its book when the account is running again: read it anew.
            self.reload()
            return
        self.book.apply(event)
        self.revision += 1
        held = self._held
        if held is not None:
            held.add(event)
            if len(held) > MAX_HELD:
                log.warning(
                    "contact replica of %s: more than %d contact events during a load;"
                    " loading again",
                    self._account,
                    MAX_HELD,
                )
                self.reload()

    async def close(self) -> None:
        """Stop a load in progress."""
        if self._loading is not None:
            self._loading.cancel()
            await asyncio.gather(self._loading, return_exceptions=True)


def _status(body: bytes) -> c.StatusReply | None:
    try:
        return _STATUS.decode(body)
    except msgspec.DecodeError:
        return None


def _decode_user(body: bytes) -> User:
    return msgspec.json.decode(body, type=User)


def _decoder(
    typ: type[list[Friend]] | type[list[Group]] | type[list[Discuss]],
) -> Callable[[bytes], object]:
    dec = msgspec.json.Decoder(typ)
    return dec.decode
