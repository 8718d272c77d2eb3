"""OneBotAccount: a real QQ account through a OneBot v11 implementation (NapCat, LLBot, ...).

Transport: forward WebSocket (the bridge connects to ``onebot_url``) or reverse WebSocket (the
implementation connects to the bridge on ``onebot_listen``; ``X-Self-ID``, ``X-Client-Role``
and the token are checked). The token goes as ``Authorization: Bearer``.

Connection life: on each connection the account waits for ``meta_event.lifecycle`` connect
(or asks ``get_login_info``), loads its contacts (state ``updating``), then is ``running`` and
emits ``login [0]`` (OneBot ids never change). A heartbeat watchdog closes a connection that
went silent; reconnects back off with jitter (tenacity). While disconnected the state is
``loading``. Actions are correlated by ``echo`` with a timeout; a failed action (``status:
failed``) becomes a clear Openqq error; a send that timed out is reported failed and never
retried, since QQ may have delivered it.

Events that arrive while contacts load wait in order and are handled once the account runs.
Group member lists load on demand (a kick, a mute, a temporary chat) and in the background,
each announced with ``update_group``.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import msgspec
from aiohttp import web
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from bridge.core import events as ev
from bridge.core.codec import encode
from bridge.core.contacts import member_name
from bridge.core.model import (
    Discuss,
    DiscussMember,
    Friend,
    Group,
    GroupMember,
    User,
    display_name,
    member_display,
)
from bridge.core.ports import Emit, SendOutcome, Snapshot
from bridge.errors import ActionFailed, BridgeError, BufferFull, UpstreamUnavailable
from bridge.netutil import start_site
from bridge.upstream.onebot.translate import (
    as_int,
    as_str,
    content_of,
    friend_of,
    group_of,
    member_of,
    outgoing,
    parse_cq,
    segments_of,
    user_of,
)

log = logging.getLogger(__name__)

#: Events read from the implementation but not yet handed to the bridge, at most.
EVENT_BACKLOG = 10_000
#: Words with which implementations say an account is under risk control (风控).
RISK_WORDS = ("风控", "risk")


class OneBotActionFailed(ActionFailed):
    """The implementation answered ``status: failed`` (or a non-zero retcode)."""

    def __init__(self, action: str, retcode: int, wording: str) -> None:
        super().__init__(f"{action} failed: retcode {retcode}: {wording or 'no message'}")
        self.action = action
        self.retcode = retcode
        self.wording = wording


class ActionTimeout(BridgeError, TimeoutError):
    """No answer to an action within its timeout (it may still have been carried out)."""


class NotConnected(UpstreamUnavailable):
    """No connection to the OneBot implementation right now (nothing was sent)."""


class ConnectionLost(BridgeError, ConnectionError):
    """The connection dropped while an action waited for its answer."""


class _ConnectFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class OneBotSettings:
    """How to reach the implementation."""

    mode: Literal["forward", "reverse"] = "forward"
    url: str = "ws://127.0.0.1:3001"
    token: str | None = None
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    path: str = "/onebot/v11/ws"
    action_timeout: float = 30.0
    lifecycle_wait: float = 3.0
    #: Missed heartbeats (of the implementation's own interval) before reconnecting.
    heartbeat_misses: float = 3.0
    reconnect_max: float = 30.0
    member_concurrency: int = 2
    risk_retcodes: tuple[int, ...] = ()


class OneBotAccount:
    """The ``onebot`` upstream."""

    kind = "onebot"
    # Real accounts get risk-controlled when they send fast (ecosystem.md §4).
    default_pacing = (0.5, 1.5)

    def __init__(self, settings: OneBotSettings) -> None:
        self.settings = settings
        self.state = "init"
        self.self_id = 0
        self.app_name = ""
        self.user = User(id=0, uid=0, name="")
        self.friends: dict[int, Friend] = {}
        self.groups: dict[int, Group] = {}
        self._loaded: set[int] = set()
        self._member_locks: dict[int, asyncio.Lock] = {}
        self._emit: Emit | None = None
        self._ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._echo = itertools.count(1)
        self._sent_ids: deque[int] = deque(maxlen=1000)
        self._stopped = asyncio.Event()
        self._lifecycle: asyncio.Future[int] | None = None
        self._last_frame = time.monotonic()
        self._heartbeat_ms = 0
        self._incoming: asyncio.Queue[tuple[web.WebSocketResponse, asyncio.Future[None]]] = (
            asyncio.Queue()
        )
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connections = 0
        #: Where the reverse WebSocket server listens, once it does.
        self.bound: tuple[str, int] | None = None

    # --- life --------------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        """Connect (or accept), serve each connection, reconnect until stopped."""
        self._emit = emit
        await self._set_state("loading")
        if self.settings.mode == "reverse":
            await self._start_server()
        try:
            while not self._stopped.is_set():
                got = await self._next_connection()
                if got is None:
                    break
                ws, done = got
                try:
                    await self._session(ws)
                finally:
                    if not done.done():
                        done.set_result(None)
                if not self._stopped.is_set():
                    await self._set_state("loading")
        finally:
            for t in list(self._tasks):
                t.cancel()
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None

    async def _next_connection(
        self,
    ) -> (
        tuple[aiohttp.ClientWebSocketResponse | web.WebSocketResponse, asyncio.Future[None]] | None
    ):
        stop = asyncio.ensure_future(self._stopped.wait())
        try:
            if self.settings.mode == "reverse":
                get = asyncio.ensure_future(self._incoming.get())
                await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    return None
                return get.result()
            conn = asyncio.ensure_future(self._connect())
            await asyncio.wait({conn, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not conn.done():
                conn.cancel()
                await asyncio.gather(conn, return_exceptions=True)
                return None
            ws = conn.result()
            return ws, asyncio.get_running_loop().create_future()
        finally:
            stop.cancel()

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        headers = {}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.log(
                logging.ERROR if "rejected the access token" in str(exc) else logging.WARNING,
                "OneBot at %s: %s (attempt %d); retrying",
                self.settings.url,
                exc,
                state.attempt_number,
            )

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_ConnectFailed),
            wait=wait_exponential_jitter(
                multiplier=0.5, max=self.settings.reconnect_max, jitter=0.5
            ),
            before_sleep=before_sleep,
        ):
            with attempt:
                session = aiohttp.ClientSession()
                try:
                    ws = await session.ws_connect(
                        self.settings.url,
                        headers=headers,
                        heartbeat=30,
                        timeout=aiohttp.ClientWSTimeout(ws_close=5),
                        max_msg_size=64 << 20,
                    )
                except aiohttp.WSServerHandshakeError as exc:
                    await session.close()
                    if exc.status in (401, 403):
                        msg = (
                            f"it rejected the access token (HTTP {exc.status});"
                            " check OPENQQ_ONEBOT_TOKEN"
                        )
                        raise _ConnectFailed(msg) from exc
                    msg = f"handshake refused (HTTP {exc.status})"
                    raise _ConnectFailed(msg) from exc
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    await session.close()
                    msg = f"cannot connect: {str(exc) or type(exc).__name__}"
                    raise _ConnectFailed(msg) from exc
                ws._openqq_session = session  # type: ignore[attr-defined]  # closed with the socket
                return ws
        raise AssertionError  # unreachable: the retry loop returns or raises

    async def _session(self, ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse) -> None:
        self._ws = ws
        self.connections += 1
        self._last_frame = time.monotonic()
        # Each connection announces its own heartbeat interval (or none).
        self._heartbeat_ms = 0
        self._lifecycle = asyncio.get_running_loop().create_future()
        # Bounded: when the bridge cannot keep up, the reader stops reading the socket and
        # the implementation holds the events (TCP back-pressure), instead of our memory.
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_BACKLOG)
        reader = self._spawn(self._read(ws, events), "onebot-read")
        handler: asyncio.Task[None] | None = None
        watchdog = self._spawn(self._watchdog(ws), "onebot-watchdog")
        try:
            await self._set_state("updating")
            await self._login()
            handler = self._spawn(self._handle_events(events), "onebot-events")
            _ = self._spawn(self._load_all_members(), "onebot-members")
            await self._set_state("running")
            await self._send_event(ev.Login(params=(0,)))
            log.info(
                "OneBot account %s (%s) running: %d friends, %d groups",
                self.self_id,
                self.app_name or "unknown implementation",
                len(self.friends),
                len(self.groups),
            )
            await reader
        except (NotConnected, ConnectionLost, ActionTimeout, OneBotActionFailed) as exc:
            log.warning("OneBot session ended while loading the account: %s", exc)
        finally:
            self._ws = None
            for t in (reader, watchdog, handler):
                if t is not None:
                    t.cancel()
            await asyncio.gather(
                *(t for t in (reader, watchdog, handler) if t is not None),
                return_exceptions=True,
            )
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionLost("connection to OneBot lost"))
            self._pending.clear()
            await ws.close()
            session = getattr(ws, "_openqq_session", None)
            if session is not None:
                await session.close()
            if not self._stopped.is_set():
                log.warning("OneBot connection closed; reconnecting")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _read(
        self,
        ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
        events: asyncio.Queue[dict[str, Any]],
    ) -> None:
        async for msg in ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            self._last_frame = time.monotonic()
            try:
                frame = msgspec.json.decode(msg.data)
            except msgspec.DecodeError:
                log.warning("OneBot sent a frame that is not JSON; ignored")
                continue
            if not isinstance(frame, dict):
                continue
            if "echo" in frame and "post_type" not in frame:
                fut = self._pending.get(str(frame["echo"]))
                if fut is not None and not fut.done():
                    fut.set_result(frame)
                continue
            if frame.get("post_type") == "meta_event":
                self._on_meta(frame)
                continue
            await events.put(frame)

    def _on_meta(self, frame: Mapping[str, Any]) -> None:
        kind = frame.get("meta_event_type")
        if kind == "lifecycle":
            sid = as_int(frame.get("self_id"))
            waiting = self._lifecycle is not None and not self._lifecycle.done()
            if frame.get("sub_type") in ("connect", "enable") and waiting:
                assert self._lifecycle is not None
                self._lifecycle.set_result(sid)
        elif kind == "heartbeat":
            self._heartbeat_ms = as_int(frame.get("interval"), self._heartbeat_ms)
            status = frame.get("status")
            if isinstance(status, Mapping) and status.get("online") is False:
                log.warning("OneBot heartbeat says account %s is offline", self.self_id)

    async def _watchdog(self, ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(0.5)
            if self._heartbeat_ms <= 0:
                continue
            limit = self.settings.heartbeat_misses * self._heartbeat_ms / 1000
            if time.monotonic() - self._last_frame > limit:
                log.warning("OneBot silent for %.0fs (no heartbeat); reconnecting", limit)
                await ws.close()
                return

    async def _login(self) -> None:
        assert self._lifecycle is not None
        try:
            async with asyncio.timeout(self.settings.lifecycle_wait):
                await asyncio.shield(self._lifecycle)
        except TimeoutError:
            log.info("no lifecycle connect event from OneBot; asking get_login_info")
        info = await self.call("get_login_info")
        self.self_id = as_int(info.get("user_id"))
        self.user = user_of(info)
        version = await self._optional("get_version_info")
        self.app_name = as_str(version.get("app_name")) if version else ""
        self.friends = {f.id: f for f in await self._load_friends()}
        groups = await self.call("get_group_list")
        self.groups = {g.id: g for g in (group_of(item) for item in _items(groups)) if g.id}
        self._loaded.clear()

    async def _optional(self, action: str, **params: Any) -> dict[str, Any] | None:
        try:
            data = await self.call(action, **params)
        except (OneBotActionFailed, ActionTimeout):
            return None
        return data if isinstance(data, dict) else None

    async def _load_friends(self) -> list[Friend]:
        try:
            categories = await self.call("get_friends_with_category")
        except (OneBotActionFailed, ActionTimeout):
            categories = None
        if isinstance(categories, list) and categories:
            out: list[Friend] = []
            for cat in categories:
                if not isinstance(cat, Mapping):
                    continue
                name = as_str(cat.get("categoryName") or cat.get("category_name")) or "我的好友"
                out.extend(
                    friend_of(i, name) for i in _items(cat.get("buddyList") or cat.get("friends"))
                )
            return out
        return [friend_of(item) for item in _items(await self.call("get_friend_list"))]

    async def _load_all_members(self) -> None:
        sem = asyncio.Semaphore(self.settings.member_concurrency)

        async def one(group: Group) -> None:
            async with sem:
                try:
                    await self.ensure_members(group)
                except (OneBotActionFailed, ActionTimeout, NotConnected, ConnectionLost) as exc:
                    log.warning("members of group %s not loaded: %s", group.uid, exc)

        await asyncio.gather(*(one(g) for g in list(self.groups.values())))

    async def relogin(self) -> None:
        """Drop the connection: the account reconnects and reloads its contacts."""
        if self._ws is not None:
            await self._ws.close()

    async def stop(self) -> None:
        """State stop, the stop event, close the connection; run() returns."""
        if self.state != "stop":
            await self._set_state("stop")
            await self._send_event(ev.Stop())
        self._stopped.set()
        if self._ws is not None:
            await self._ws.close()

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

    def snapshot(self) -> Snapshot:
        """The cached contacts (no discuss groups in OneBot v11)."""
        return Snapshot(
            user=self.user,
            friends=list(self.friends.values()),
            groups=list(self.groups.values()),
            discusses=[],
        )

    # --- actions -----------------------------------------------------------------------------
    async def call(self, action: str, **params: Any) -> Any:
        """Run an action and return its ``data``; raises on failure, timeout or no connection."""
        ws = self._ws
        if ws is None or ws.closed:
            msg = "not connected to OneBot"
            raise NotConnected(msg)
        echo = str(next(self._echo))
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[echo] = fut
        try:
            await ws.send_bytes(encode({"action": action, "params": params, "echo": echo}))
            async with asyncio.timeout(self.settings.action_timeout):
                frame = await fut
        except TimeoutError as exc:
            msg = f"{action}: no answer from OneBot within {self.settings.action_timeout:g}s"
            raise ActionTimeout(msg) from exc
        except ConnectionResetError as exc:
            msg = f"{action}: connection to OneBot lost"
            raise ConnectionLost(msg) from exc
        finally:
            self._pending.pop(echo, None)
        retcode = as_int(frame.get("retcode"), -1)
        if frame.get("status") == "failed" or retcode not in (0, 1):
            wording = as_str(frame.get("wording") or frame.get("message") or frame.get("msg"))
            raise OneBotActionFailed(action, retcode, wording)
        return frame.get("data")

    def _is_risk(self, exc: OneBotActionFailed) -> bool:
        text = exc.wording.lower()
        return exc.retcode in self.settings.risk_retcodes or any(w in text for w in RISK_WORDS)

    async def _send(self, action: str, target: int, content: str, **params: Any) -> SendOutcome:
        now = int(time.time())
        try:
            data = await self.call(action, message=outgoing(content), **params)
        except (ActionTimeout, ConnectionLost) as exc:
            # The action left: QQ may have delivered it, so it is reported, never retried.
            return SendOutcome(
                code=-3,
                info=f"{exc}; it may have been delivered, so it is not retried",
                msg_id=0,
                time=now,
                content=content,
            )
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
            return SendOutcome(
                code=-5,
                info=f"retcode {exc.retcode}: {exc.wording or 'failed'}",
                msg_id=0,
                time=now,
                content=content,
            )
        mid = as_int(data.get("message_id")) if isinstance(data, Mapping) else 0
        self._sent_ids.append(mid)
        return SendOutcome(code=0, info="发送正常", msg_id=mid, time=now, content=content)

    async def send_friend(self, friend: Friend, content: str) -> SendOutcome:
        """send_private_msg."""
        return await self._send(
            "send_private_msg", friend.uid or friend.id, content, user_id=friend.uid or friend.id
        )

    async def send_group(self, group: Group, content: str) -> SendOutcome:
        """send_group_msg."""
        gid = group.uid or group.id
        return await self._send("send_group_msg", gid, content, group_id=gid)

    async def send_discuss(self, discuss: Discuss, content: str) -> SendOutcome:
        """OneBot v11 has no discuss groups (the bridge answers 102 before this)."""
        return SendOutcome(
            code=-5,
            info="OneBot v11 has no discuss groups",
            msg_id=0,
            time=int(time.time()),
            content=content,
        )

    async def send_sess(
        self, member: GroupMember | DiscussMember, via: Group | Discuss, content: str
    ) -> SendOutcome:
        """send_private_msg with the group the member was met in (temporary chat)."""
        uid = member.uid if member.uid is not None else as_int(member.id)
        return await self._send("send_private_msg", uid, content, user_id=uid, group_id=via.id)

    async def ensure_members(self, group: Group) -> None:
        """Load a group's members once (get_group_member_list), then announce update_group."""
        if group.id in self._loaded or group.id not in self.groups:
            return
        lock = self._member_locks.setdefault(group.id, asyncio.Lock())
        async with lock:
            if group.id in self._loaded:
                return
            items = await self.call("get_group_member_list", group_id=group.id)
            members = [member_of(i) for i in _items(items)]
            current = self.groups.get(group.id, group)
            info = {
                "group_id": current.id,
                "group_name": current.name,
                "max_member_count": current.max_member,
            }
            updated = group_of(info, members, self.self_id)
            self.groups[group.id] = updated
            self._loaded.add(group.id)
        await self._send_event(ev.UpdateGroup(params=(updated,)))

    async def kick(self, group: Group, members: Sequence[GroupMember]) -> None:
        """set_group_kick per member, or NapCat's set_group_kick_members for several."""
        gid = group.uid or group.id
        uids = [m.uid if m.uid is not None else m.id for m in members]
        if len(uids) > 1 and "napcat" in self.app_name.lower():
            await self.call(
                "set_group_kick_members", group_id=gid, user_id=uids, reject_add_request=False
            )
            return
        for uid in uids:
            await self.call("set_group_kick", group_id=gid, user_id=uid, reject_add_request=False)

    async def shutup(self, group: Group, members: Sequence[GroupMember], seconds: int) -> None:
        """set_group_ban per member (seconds; 0 lifts the mute)."""
        gid = group.uid or group.id
        for m in members:
            await self.call(
                "set_group_ban",
                group_id=gid,
                user_id=m.uid if m.uid is not None else m.id,
                duration=seconds,
            )

    # --- inbound -----------------------------------------------------------------------------
    async def _handle_events(self, events: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            frame = await events.get()
            try:
                await self._on_event(frame)
            except (NotConnected, ConnectionLost, ActionTimeout, OneBotActionFailed) as exc:
                log.warning(
                    "OneBot %s event handled without details: %s", frame.get("post_type"), exc
                )
            except Exception:
                log.exception("OneBot event could not be handled: %s", _brief(frame))

    async def _on_event(self, f: dict[str, Any]) -> None:
        post_type = f.get("post_type")
        if post_type in ("message", "message_sent"):
            event = self._message(f, sent=post_type == "message_sent")
            if event is not None:
                await self._send_event(event)
        elif post_type == "notice":
            await self._notice(f)
        elif post_type == "request":
            await self._request(f)
        else:
            log.debug("OneBot event %s ignored", _brief(f))

    def _group(self, gid: int) -> Group:
        return self.groups.get(gid) or Group(id=gid, uid=gid, code=gid, name=str(gid))

    def _member(
        self, group: Group, uid: int, sender: Mapping[str, Any] | None = None
    ) -> GroupMember:
        found = next((m for m in group.member if m.uid == uid), None)
        if found is not None:
            return found
        if sender:
            return member_of({**sender, "user_id": uid})
        return GroupMember(id=uid, uid=uid, name=str(uid))

    def _friend(self, uid: int, nickname: str = "") -> Friend:
        return self.friends.get(uid) or Friend(
            id=uid, uid=uid, name=nickname or "昵称未知", category="陌生人"
        )

    def _message(self, f: Mapping[str, Any], *, sent: bool) -> ev.Event | None:
        mid = as_int(f.get("message_id"))
        if sent and mid in self._sent_ids:
            return None  # our own send: the bridge already reported it
        raw = f.get("message")
        segments = (
            segments_of(raw)
            if raw not in (None, "", [])
            else parse_cq(as_str(f.get("raw_message")))
        )
        raw_sender = f.get("sender")
        sender: Mapping[str, Any] = raw_sender if isinstance(raw_sender, Mapping) else {}
        common: dict[str, Any] = {
            "id": mid,
            "time": as_int(f.get("time")) or int(time.time()),
            "segments": segments,
        }
        me = self.user
        if f.get("message_type") == "group":
            group = self._group(as_int(f.get("group_id")))

            def name_of(qq: str) -> str:
                m = next((x for x in group.member if str(x.uid) == qq), None)
                return member_display(m) if m else qq

            content = content_of(segments, name_of)
            if sent:
                return ev.SentGroupMessage(
                    **common,
                    content=content,
                    code=0,
                    info="来自其他设备",
                    msg="发送成功",
                    source="outer",
                    sender=self._member(group, me.uid).card or me.name,
                    sender_id=me.id,
                    sender_uid=me.uid,
                    group=display_name(group),
                    group_id=group.id,
                    group_uid=group.uid,
                )
            uid = as_int(f.get("user_id"))
            m = self._member(group, uid, sender)
            mine = next((x for x in group.member if x.uid == me.uid), None)
            return ev.ReceivedGroupMessage(
                **common,
                content=content,
                sender=member_name(m, self.friends),
                sender_id=m.id,
                sender_uid=m.uid,
                receiver=member_display(mine) if mine else me.name,
                receiver_id=me.id,
                receiver_uid=me.uid,
                group=display_name(group),
                group_id=group.id,
                group_uid=group.uid,
            )
        content = content_of(segments)
        if sent:
            peer = self._friend(as_int(f.get("target_id") or f.get("user_id")))
            return ev.SentFriendMessage(
                **common,
                content=content,
                code=0,
                info="来自其他设备",
                msg="发送成功",
                source="outer",
                sender=me.name,
                sender_id=me.id,
                sender_uid=me.uid,
                receiver=display_name(peer),
                receiver_id=peer.id,
                receiver_uid=peer.uid,
            )
        uid = as_int(f.get("user_id"))
        friend = self._friend(uid, as_str(sender.get("nickname")))
        if f.get("sub_type") == "group":
            gid = as_int(f.get("group_id") or sender.get("group_id") or f.get("temp_source"))
            extra: dict[str, Any] = {}
            if gid:
                group = self._group(gid)
                extra = {"group": display_name(group), "group_id": group.id, "group_uid": group.uid}
            return ev.ReceivedSessMessage(
                **common,
                content=content,
                sender=as_str(sender.get("nickname")) or friend.name,
                sender_id=uid,
                sender_uid=uid,
                receiver=me.name,
                receiver_id=me.id,
                receiver_uid=me.uid,
                via="group",
                **extra,
            )
        return ev.ReceivedFriendMessage(
            **common,
            content=content,
            sender=display_name(friend),
            sender_id=friend.id,
            sender_uid=friend.uid,
            receiver=me.name,
            receiver_id=me.id,
            receiver_uid=me.uid,
        )

    def _replace_group(self, group: Group, members: list[GroupMember]) -> Group:
        updated = msgspec.structs.replace(group, member=members)
        if group.id in self.groups:
            self.groups[group.id] = updated
        return updated

    async def _notice(self, f: Mapping[str, Any]) -> None:
        kind = f.get("notice_type")
        gid, uid = as_int(f.get("group_id")), as_int(f.get("user_id"))
        sub = as_str(f.get("sub_type"))
        if kind == "group_increase":
            if uid == self.self_id:
                info = await self._optional("get_group_info", group_id=gid) or {"group_id": gid}
                group = group_of(info, [], self.self_id)
                self.groups[group.id] = group
                await self._send_event(ev.NewGroup(params=(group,)))
                _ = self._spawn(self.ensure_members(group), "onebot-members")
                return
            group = self._group(gid)
            details = await self._optional(
                "get_group_member_info", group_id=gid, user_id=uid, no_cache=True
            )
            member = member_of(details) if details else GroupMember(id=uid, uid=uid, name=str(uid))
            others = [m for m in group.member if m.uid != uid]
            group = self._replace_group(
                group, [*others, member] if gid in self._loaded else group.member
            )
            await self._send_event(ev.NewGroupMember(params=(member, group)))
        elif kind == "group_decrease":
            group = self._group(gid)
            if sub == "kick_me" or uid == self.self_id:
                self.groups.pop(gid, None)
                self._loaded.discard(gid)
                await self._send_event(ev.LoseGroup(params=(group,)))
                return
            member = self._member(group, uid)
            group = self._replace_group(group, [m for m in group.member if m.uid != uid])
            await self._send_event(ev.LoseGroupMember(params=(member, group)))
        elif kind == "friend_add":
            friends = await self._optional_list("get_friend_list")
            item = next((i for i in friends if as_int(i.get("user_id")) == uid), None)
            friend = friend_of(item) if item else self._friend(uid)
            if item is None:
                stranger = await self._optional("get_stranger_info", user_id=uid)
                friend = Friend(
                    id=uid, uid=uid, name=as_str((stranger or {}).get("nickname")) or str(uid)
                )
            self.friends[uid] = friend
            await self._send_event(ev.NewFriend(params=(friend,)))
        elif kind == "group_ban":
            group = self._group(gid)
            if uid == 0:
                operator = as_int(f.get("operator_id"))
                await self._send_event(
                    ev.Notify(params=(f"whole_{sub or 'ban'}", group.uid, operator, None))
                )
                return
            member = self._member(group, uid)
            seconds = as_int(f.get("duration")) if sub != "lift_ban" else 0
            await self._send_event(ev.GroupMemberShutup(params=(member, group, seconds)))
        elif kind == "group_recall":
            await self._send_event(
                ev.GroupRecall(
                    params=(
                        self._group(gid),
                        as_int(f.get("operator_id")),
                        uid,
                        as_int(f.get("message_id")),
                    )
                )
            )
        elif kind == "friend_recall":
            await self._send_event(
                ev.FriendRecall(params=(self._friend(uid), as_int(f.get("message_id"))))
            )
        elif kind in ("group_admin", "group_card"):
            group = self._group(gid)
            old_member = self._member(group, uid)
            old: str | None
            new: str | None
            if kind == "group_admin":
                prop, old, new = "role", old_member.role, "admin" if sub == "set" else "member"
            else:
                prop = "card"
                old, new = as_str(f.get("card_old")) or None, as_str(f.get("card_new")) or None
            member = msgspec.structs.replace(old_member, **{prop: new})
            self._replace_group(group, [member if m.uid == uid else m for m in group.member])
            await self._send_event(ev.GroupMemberPropertyChange(params=(member, prop, old, new)))
        elif kind == "group_upload":
            raw_file = f.get("file")
            file: Mapping[str, Any] = raw_file if isinstance(raw_file, Mapping) else {}
            clean = {
                str(k): v
                for k, v in file.items()
                if isinstance(v, str | int | float | bool) or v is None
            }
            await self._send_event(ev.GroupUpload(params=(self._group(gid), uid, clean)))
        elif kind == "notify":
            target = as_int(f.get("target_id")) or None
            await self._send_event(ev.Notify(params=(sub, gid or None, uid, target)))
        else:
            log.debug("OneBot notice %s has no Openqq counterpart; ignored", kind)

    async def _optional_list(self, action: str, **params: Any) -> list[Mapping[str, Any]]:
        try:
            return _items(await self.call(action, **params))
        except (OneBotActionFailed, ActionTimeout):
            return []

    async def _request(self, f: Mapping[str, Any]) -> None:
        uid, comment, flag = (
            as_int(f.get("user_id")),
            as_str(f.get("comment")),
            as_str(f.get("flag")),
        )
        if f.get("request_type") == "friend":
            await self._send_event(ev.FriendRequest(params=(uid, comment, flag)))
        elif f.get("request_type") == "group":
            await self._send_event(
                ev.GroupRequest(
                    params=(
                        as_int(f.get("group_id")),
                        uid,
                        as_str(f.get("sub_type")),
                        comment,
                        flag,
                    )
                )
            )

    # --- reverse WebSocket -------------------------------------------------------------------
    async def _start_server(self) -> None:
        host, port = self.settings.listen
        app = web.Application()
        path = self.settings.path.rstrip("/") or "/"
        app.router.add_get(path, self._accept)
        if path != "/":
            app.router.add_get(path + "/", self._accept)
        self._runner, self.bound = await start_site(app, host, port, "onebot_listen")
        log.info("waiting for OneBot to connect to ws://%s:%d%s", *self.bound, path)

    def _token_ok(self, request: web.Request) -> bool:
        token = self.settings.token
        if not token:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            given = request.query.get("access_token", "")
        return hmac.compare_digest(given.strip().encode(), token.encode())

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        if not self._token_ok(request):
            status = (
                401
                if "Authorization" not in request.headers and "access_token" not in request.query
                else 403
            )
            log.error("OneBot connection from %s refused: wrong access token", request.remote)
            return web.Response(status=status, text="access token missing or wrong")
        role = request.headers.get("X-Client-Role", "Universal")
        if role.lower() != "universal":
            log.error("OneBot connection with X-Client-Role %s refused: use Universal", role)
            return web.Response(status=400, text="X-Client-Role must be Universal")
        if not request.headers.get("X-Self-ID", "").isdigit():
            return web.Response(status=400, text="X-Self-ID missing")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 << 20)
        await ws.prepare(request)
        if self._ws is not None:
            log.warning("a new OneBot connection replaces the current one")
            await self._ws.close()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._incoming.put((ws, done))
        await done
        return ws


def _items(data: Any) -> list[Mapping[str, Any]]:
    return [i for i in data if isinstance(i, Mapping)] if isinstance(data, list) else []


def _brief(frame: Mapping[str, Any]) -> str:
    keys = ("post_type", "message_type", "notice_type", "request_type", "sub_type")
    return "/".join(as_str(frame.get(k)) for k in keys if frame.get(k))
