"""OneBotAccount: a real QQ account through a OneBot v11 implementation (the Upstream port).

This module owns the account's life and its actions; the socket is
:mod:`~bridge.upstream.onebot.connection`'s, the translation of events
:mod:`~bridge.upstream.onebot.inbound`'s.

Connection life: on each link the account waits for ``meta_event.lifecycle`` connect (or asks
``get_login_info``), loads its contacts (state ``updating``), then is ``running`` and emits
``login [0]`` (OneBot ids never change). While disconnected the state is ``loading``. A failed
action (``status: failed``) becomes a clear Openqq error; a send that timed out is reported
failed and never retried, since QQ may have delivered it.

Events that arrive while contacts load wait in order and are handled once the account runs.
Group member lists load on demand (a kick, a mute, a temporary chat) and in the background,
each announced with ``update_group``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import msgspec

from bridge.core import events as ev
from bridge.core.members import compact_group
from bridge.core.model import Discuss, DiscussMember, Friend, Group, GroupMember, User
from bridge.core.ports import Emit, SendOutcome, Snapshot
from bridge.errors import BufferFull
from bridge.metrics import OFF, Metrics
from bridge.upstream.onebot import inbound
from bridge.upstream.onebot.book import Book
from bridge.upstream.onebot.connection import Connector, FrameCounters, Link
from bridge.upstream.onebot.errors import (
    ACTION_ERRORS,
    ActionTimeout,
    BadFrame,
    ConnectionLost,
    NotConnected,
    OneBotActionFailed,
    WrongAccount,
)
from bridge.upstream.onebot.frames import (
    Frame,
    OBCategory,
    OBFriend,
    OBGroup,
    OBLoginInfo,
    OBMember,
    OBMessage,
    OBMeta,
    OBNotice,
    OBRequest,
    OBSent,
    OBVersion,
    convert,
    items,
)
from bridge.upstream.onebot.settings import OneBotSettings
from bridge.upstream.onebot.translate import friend_of, group_of, member_of, outgoing, user_of

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Words with which implementations say an account is under risk control (风控).
RISK_WORDS = ("风控", "risk")


class OneBotAccount:
    """The ``onebot`` upstream."""

    kind = "onebot"
    # Real accounts get risk-controlled when they send fast (ecosystem.md §4).
    default_pacing = (0.5, 1.5)

    def __init__(
        self, settings: OneBotSettings, *, metrics: Metrics = OFF, account: str = ""
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        self._account = account
        self.state = "init"
        self.app_name = ""
        self.book = Book()
        self.counters = FrameCounters()
        self.connector = Connector(settings, self._on_meta)
        self._member_locks: dict[int, asyncio.Lock] = {}
        self._emit: Emit | None = None
        self._link: Link | None = None
        self._sent_ids: deque[int] = deque(maxlen=1000)
        # Sends whose answer has not come yet, by conversation: a message_sent report of one
        # of them may arrive first (NapCat reportSelfMessage) and must wait for that answer.
        self._in_flight: dict[tuple[str, int], set[asyncio.Future[int]]] = {}
        #: Whether QQ says the account is online (bot_offline, heartbeat status).
        self.online = True
        self._offline_by: str | None = None
        self._ran = False
        self._stopped = asyncio.Event()
        self._lifecycle: asyncio.Future[int] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Links served so far.
        self.connections = 0

    # --- what others read ----------------------------------------------------------------------
    @property
    def self_id(self) -> int:
        """The account's QQ number (0 before the first login)."""
        return self.book.self_id

    @property
    def user(self) -> User:
        """The account."""
        return self.book.user

    @property
    def friends(self) -> dict[int, Friend]:
        """Cached friends by QQ number."""
        return self.book.friends

    @property
    def groups(self) -> dict[int, Group]:
        """Cached groups by number."""
        return self.book.groups

    @property
    def bound(self) -> tuple[str, int] | None:
        """Where the reverse WebSocket server listens, once it does."""
        return self.connector.bound

    def snapshot(self) -> Snapshot:
        """The cached contacts (no discuss groups in OneBot v11)."""
        return Snapshot(
            user=self.book.user,
            friends=list(self.book.friends.values()),
            groups=list(self.book.groups.values()),
            discusses=[],
        )

    # --- life --------------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        """Connect (or accept), serve each link, reconnect until stopped."""
        self._emit = emit
        await self._set_state("loading")
        await self.connector.start()
        try:
            while not self._stopped.is_set():
                link = await self._unless_stopped(self.connector.next_link())
                if link is None:
                    break
                ended = await self._session(link)
                if self._stopped.is_set():
                    break
                await self._set_state("loading")
                if ended is not None:
                    # Refused token, wrong account: only the user can fix these.
                    why, needs_user = ended
                    await self._unless_stopped(self.connector.pause(why, error=needs_user))
        finally:
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.connector.close()

    async def _unless_stopped(self, aw: Awaitable[T]) -> T | None:
        """``aw``'s result, or None when the account is stopped first."""
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return None
        return task.result()

    async def _session(self, link: Link) -> tuple[str, bool] | None:
        """Serve one link; returns why it ended before ``running`` (None if it ran).

        The flag says whether only the user can fix it (a token, an account).
        """
        self._link = self.connector.current = link
        self.connections += 1
        if self.connections > 1:
            self._metrics.upstream_reconnects.labels(self._account).inc()
        self.online, self._offline_by, self._ran = True, None, False
        self._lifecycle = asyncio.get_running_loop().create_future()
        reader = self._spawn(link.read(self.counters), "onebot-read")
        watchdog = self._spawn(link.watchdog(), "onebot-watchdog")
        handler: asyncio.Task[None] | None = None
        why: str | None = "closed while loading the account"
        needs_user = False
        try:
            await self._set_state("updating")
            if await self._logged_in(reader):
                handler = self._spawn(self._handle_events(link), "onebot-events")
                _ = self._spawn(self._load_all_members(), "onebot-members")
                await self._set_state("running")
                self.connector.ran()
                why, self._ran = None, True
                await self._send_event(ev.Login(params=(0,)))
                log.info(
                    "OneBot account %s (%s) running: %d friends, %d groups",
                    self.self_id,
                    self.app_name or "unknown implementation",
                    len(self.book.friends),
                    len(self.book.groups),
                )
            await reader
        except (*ACTION_ERRORS, BadFrame, WrongAccount) as exc:
            why, needs_user = str(exc), isinstance(exc, WrongAccount)
        finally:
            if link.refused is not None:
                why, needs_user = str(link.refused), True
            self._link = self.connector.current = None
            for t in (reader, watchdog, handler):
                if t is not None:
                    t.cancel()
            await asyncio.gather(
                *(t for t in (reader, watchdog, handler) if t is not None),
                return_exceptions=True,
            )
            await link.close()
            if not self._stopped.is_set() and why is None:
                log.warning("OneBot connection closed; reconnecting")
        return None if why is None else (why, needs_user)

    async def _logged_in(self, reader: asyncio.Task[None]) -> bool:
        """Log in; False when the link closed first (login errors are raised)."""
        login = self._spawn(self._login(), "onebot-login")
        await asyncio.wait({login, reader}, return_when=asyncio.FIRST_COMPLETED)
        if login.done():
            login.result()
            return True
        login.cancel()
        await asyncio.gather(login, return_exceptions=True)
        return False

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_meta(self, frame: OBMeta) -> None:
        if frame.meta_event_type == "lifecycle":
            waiting = self._lifecycle is not None and not self._lifecycle.done()
            if frame.sub_type in ("connect", "enable") and waiting:
                assert self._lifecycle is not None
                self._lifecycle.set_result(frame.self_id)
        elif frame.status is not None and frame.status.online is False:
            log.warning("OneBot heartbeat says account %s is offline", self.self_id)

    async def _login(self) -> None:
        assert self._lifecycle is not None
        try:
            async with asyncio.timeout(self.settings.lifecycle_wait):
                await asyncio.shield(self._lifecycle)
        except TimeoutError:
            log.info("no lifecycle connect event from OneBot; asking get_login_info")
        info = convert(await self.call("get_login_info"), OBLoginInfo)
        pinned = self.connector.pinned
        if pinned and info.user_id != pinned:
            msg = (
                f"it serves QQ {info.user_id}, but this bridge serves QQ {pinned}"
                " (run one bridge account per QQ account)"
            )
            raise WrongAccount(msg)
        self.connector.pinned = info.user_id
        if self._link is not None:
            self._link.pinned = info.user_id
        self.book.user = user_of(info)
        version = await self._optional("get_version_info")
        self.app_name = convert(version, OBVersion).app_name if version else ""
        self.book.friends = {f.id: f for f in await self._load_friends()}
        groups = items(await self.call("get_group_list"), OBGroup)
        self.book.groups = {g.id: g for g in (group_of(i) for i in groups) if g.id}
        self.book.loaded.clear()

    async def _optional(self, action: str, **params: Any) -> Any:
        try:
            return await self.call(action, **params)
        except (OneBotActionFailed, ActionTimeout):
            return None

    async def _load_friends(self) -> list[Friend]:
        categories = items(await self._optional("get_friends_with_category"), OBCategory)
        if categories:
            out: list[Friend] = []
            for cat in categories:
                name = cat.categoryName or cat.category_name or "我的好友"
                out.extend(
                    friend_of(i, name) for i in items(cat.buddyList or cat.friends, OBFriend)
                )
            return out
        return [friend_of(i) for i in items(await self.call("get_friend_list"), OBFriend)]

    async def _load_all_members(self) -> None:
        sem = asyncio.Semaphore(self.settings.member_concurrency)

        async def one(group: Group) -> None:
            async with sem:
                try:
                    await self.ensure_members(group)
                except ACTION_ERRORS as exc:
                    log.warning("members of group %s not loaded: %s", group.uid, exc)

        await asyncio.gather(*(one(g) for g in list(self.book.groups.values())))

    async def relogin(self) -> None:
        """Drop the connection: the account reconnects and reloads its contacts."""
        if self._link is not None:
            await self._link.ws.close()

    async def stop(self) -> None:
        """State stop, the stop event, close the connection; run() returns."""
        if self.state != "stop":
            await self._set_state("stop")
            await self._send_event(ev.Stop())
        self._stopped.set()
        if self._link is not None:
            await self._link.ws.close()

    async def _set_state(self, new: str) -> None:
        if new == self.state:
            return
        old, self.state = self.state, new
        await self._send_event(ev.StateChange(params=(old, new)))

    async def _send_event(self, event: ev.Event) -> None:
        assert self._emit is not None
        waited = False
        while True:
            try:
                await self._emit(event)
            except BufferFull as exc:
                # QQ cannot be told to wait: keep the event and retry; the bounded backlog
                # behind it stops the socket reads meanwhile.
                if not waited:
                    log.warning("holding OneBot events until the bridge has room: %s", exc)
                    waited = True
                await asyncio.sleep(0.5)
                continue
            if waited:
                log.warning("OneBot events flow again")
            return

    # --- inbound -----------------------------------------------------------------------------
    async def _handle_events(self, link: Link) -> None:
        while True:
            frame = await link.events.get()
            try:
                await self._on_event(frame)
            except BadFrame as exc:
                self.counters.bad(f"{inbound.brief(frame)}: {exc}")
            except ACTION_ERRORS as exc:
                log.warning(
                    "OneBot %s event handled without details: %s", inbound.brief(frame), exc
                )
            except Exception:
                log.exception("OneBot event could not be handled: %s", inbound.brief(frame))

    async def _on_event(self, f: Frame) -> None:
        out: list[ev.Event] = []
        if isinstance(f, OBMessage):
            if inbound.is_own(f, self.book) and await self._is_own_send(f):
                return  # our own send: the bridge already reported it
            event = inbound.message(f, self.book)
            out = [event] if event is not None else []
        elif isinstance(f, OBMeta):
            if f.status is not None and f.status.online is not None:
                await self._set_online(f.status.online, "heartbeat")
        elif isinstance(f, OBNotice) and f.notice_type in ("bot_offline", "bot_online"):
            await self._set_online(f.notice_type == "bot_online", "notice")
        elif isinstance(f, OBNotice):
            lookup = inbound.lookup_for(f, self.book)
            details = await self._lookup(*lookup) if lookup else None
            out = inbound.notice(f, self.book, details, input_status=self.settings.input_status)
        elif isinstance(f, OBRequest):
            out = inbound.request(f)
        else:
            log.debug("OneBot event %s ignored", inbound.brief(f))
        for event in out:
            await self._send_event(event)
            if isinstance(event, ev.NewGroup):
                _ = self._spawn(self.ensure_members(event.params[0]), "onebot-members")

    async def _lookup(self, action: str, params: dict[str, Any]) -> Any:
        # Every later event waits for this one: bounded tightly, and on failure the event
        # is published with what the frame said.
        link = self._link
        if link is None:
            return None
        try:
            return await link.call(action, params, wait=self.settings.lookup_timeout)
        except ACTION_ERRORS as exc:
            log.info("OneBot %s gave no details (%s); publishing what is known", action, exc)
            return None

    async def _is_own_send(self, f: OBMessage) -> bool:
        if f.message_id in self._sent_ids:
            return True
        waiting = self._in_flight.get(_conversation(f.message_type, f.group_id or f.target_id))
        if not waiting:
            return False
        await asyncio.wait(set(waiting), timeout=self.settings.action_timeout)
        return f.message_id in self._sent_ids

    async def _set_online(self, online: bool, why: str) -> None:
        # Lagrange's heartbeats say online:true after its bot_offline notice: a heartbeat
        # only undoes an offline that a heartbeat reported, a notice the notice's.
        if online and self._offline_by not in (None, why):
            return
        if online == self.online:
            return
        self.online = online
        self._offline_by = None if online else why
        if not self._ran:
            return
        if online:
            log.warning("QQ account %s is online again (%s)", self.self_id, why)
            await self._set_state("running")
        else:
            log.warning(
                "QQ account %s is offline (%s); sends are refused until it is back",
                self.self_id,
                why,
            )
            await self._set_state("loading")

    def _require_online(self) -> None:
        if not self.online:
            msg = f"QQ account {self.self_id} is offline (the implementation said so)"
            raise NotConnected(msg)

    # --- actions -----------------------------------------------------------------------------
    async def call(self, action: str, **params: Any) -> Any:
        """Run an action and return its ``data``; raises on failure, timeout or no connection."""
        link = self._link
        if link is None or link.closed:
            msg = "not connected to OneBot"
            raise NotConnected(msg)
        m = self._metrics
        start = time.perf_counter()
        try:
            data = await link.call(action, params)
        except Exception:
            m.child(m.onebot_action_failures, self._account, action).inc()
            raise
        finally:
            m.child(m.onebot_action_seconds, self._account, action).observe(
                time.perf_counter() - start
            )
        return data

    def _is_risk(self, exc: OneBotActionFailed) -> bool:
        text = exc.wording.lower()
        return exc.retcode in self.settings.risk_retcodes or any(w in text for w in RISK_WORDS)

    async def _send(
        self,
        action: str,
        target: int,
        content: str,
        segments: list[ev.Segment] | None,
        **params: Any,
    ) -> SendOutcome:
        self._require_online()
        now = int(time.time())
        key = _conversation("group" if action == "send_group_msg" else "private", target)
        answered: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._in_flight.setdefault(key, set()).add(answered)
        try:
            return await self._send_once(action, target, content, segments, now, params)
        finally:
            answered.set_result(0)
            waiting = self._in_flight.get(key, set())
            waiting.discard(answered)
            if not waiting:
                self._in_flight.pop(key, None)

    async def _send_once(
        self,
        action: str,
        target: int,
        content: str,
        segments: list[ev.Segment] | None,
        now: int,
        params: dict[str, Any],
    ) -> SendOutcome:
        # Segments (validated by the command) go out as the OneBot array they are.
        message = outgoing(content) if segments is None else msgspec.to_builtins(segments)
        try:
            data = await self.call(action, message=message, **params)
        except (ActionTimeout, ConnectionLost) as exc:
            # The action left: QQ may have delivered it, so it is reported, never retried.
            info = f"{exc}; it may have been delivered, so it is not retried"
            return SendOutcome(code=-3, info=info, msg_id=0, time=now, content=content)
        except OneBotActionFailed as exc:
            if self._is_risk(exc):
                log.warning(
                    "QQ refused %s to %s and says the account may be under risk control"
                    " (风控): %s; slow down (settings send_interval, send_interval_per_target)",
                    action,
                    target,
                    exc.wording,
                )
                await self._send_event(
                    ev.RiskControl(params=(action, exc.retcode, exc.wording, target))
                )
            info = f"retcode {exc.retcode}: {exc.wording or 'failed'}"
            return SendOutcome(code=-5, info=info, msg_id=0, time=now, content=content)
        mid = items([data], OBSent)[0].message_id if isinstance(data, dict) else 0
        self._sent_ids.append(mid)
        return SendOutcome(code=0, info="发送正常", msg_id=mid, time=now, content=content)

    async def send_friend(
        self, friend: Friend, content: str, segments: list[ev.Segment] | None = None
    ) -> SendOutcome:
        """send_private_msg."""
        uid = friend.uid or friend.id
        return await self._send("send_private_msg", uid, content, segments, user_id=uid)

    async def send_group(
        self, group: Group, content: str, segments: list[ev.Segment] | None = None
    ) -> SendOutcome:
        """send_group_msg."""
        gid = group.uid or group.id
        return await self._send("send_group_msg", gid, content, segments, group_id=gid)

    async def send_discuss(
        self, discuss: Discuss, content: str, segments: list[ev.Segment] | None = None
    ) -> SendOutcome:
        """OneBot v11 has no discuss groups (the bridge answers 102 before this)."""
        return SendOutcome(
            code=-5,
            info="OneBot v11 has no discuss groups",
            msg_id=0,
            time=int(time.time()),
            content=content,
        )

    async def send_sess(
        self,
        member: GroupMember | DiscussMember,
        via: Group | Discuss,
        content: str,
        segments: list[ev.Segment] | None = None,
    ) -> SendOutcome:
        """send_private_msg with the group the member was met in (temporary chat)."""
        uid = member.uid if member.uid is not None else int(member.id)
        return await self._send(
            "send_private_msg", uid, content, segments, user_id=uid, group_id=via.id
        )

    async def ensure_members(self, group: Group) -> None:
        """Load a group's members once (get_group_member_list), then announce update_group."""
        book = self.book
        if group.id in book.loaded or group.id not in book.groups:
            return
        lock = self._member_locks.setdefault(group.id, asyncio.Lock())
        async with lock:
            if group.id in book.loaded:
                return
            data = await self.call("get_group_member_list", group_id=group.id)
            members = [member_of(i) for i in items(data, OBMember)]
            current = book.groups.get(group.id, group)
            info = OBGroup(
                group_id=current.id, group_name=current.name, max_member_count=current.max_member
            )
            updated = compact_group(group_of(info, members, self.self_id))
            book.groups[group.id] = updated
            book.loaded.add(group.id)
        await self._send_event(ev.UpdateGroup(params=(updated,)))

    async def kick(self, group: Group, members: Sequence[GroupMember]) -> None:
        """set_group_kick per member, or NapCat's set_group_kick_members for several."""
        self._require_online()
        gid = group.uid or group.id
        uids = [m.uid if m.uid is not None else m.id for m in members]
        if len(uids) > 1 and "napcat" in self.app_name.lower():
            try:
                await self.call(
                    "set_group_kick_members", group_id=gid, user_id=uids, reject_add_request=False
                )
            except OneBotActionFailed as exc:
                # A NapCat without the batch action (1404; 404 elsewhere): nothing was kicked.
                if exc.retcode not in (404, 1404):
                    raise
                log.info("set_group_kick_members unknown to this NapCat; kicking one by one")
            else:
                return
        for uid in uids:
            await self.call("set_group_kick", group_id=gid, user_id=uid, reject_add_request=False)

    async def shutup(self, group: Group, members: Sequence[GroupMember], seconds: int) -> None:
        """set_group_ban per member (seconds; 0 lifts the mute)."""
        self._require_online()
        gid = group.uid or group.id
        for m in members:
            await self.call(
                "set_group_ban",
                group_id=gid,
                user_id=m.uid if m.uid is not None else m.id,
                duration=seconds,
            )


def _conversation(message_type: str, target: int) -> tuple[str, int]:
    return ("group" if message_type == "group" else "private", target)
