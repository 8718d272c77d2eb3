"""SimulatedAccount: a QQ account in memory, for the quick start, demos, tests and load.

It goes through the real client states (init, loading, scaning with a QR code PNG,
confirming, updating, running, stop), serves the example world of world.py, and turns sends,
kicks and mutes into the same events a real account would produce. An HTTP control endpoint
(setting ``sim_listen``) lets a person or a test make the account receive messages and
events (``POST /sim/inject``) or generate load (``POST /sim/load``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from bridge.core import events as ev
from bridge.core.codec import encode
from bridge.core.contacts import member_name
from bridge.core.model import (
    Discuss,
    DiscussMember,
    Friend,
    Group,
    GroupMember,
    display_name,
    member_display,
)
from bridge.core.ports import Emit, SendOutcome, Snapshot
from bridge.errors import (
    ActionFailed,
    BridgeError,
    BufferFull,
    UpstreamUnavailable,
)
from bridge.netutil import start_site
from bridge.upstream import sim_inject as inj
from bridge.upstream.png import qr_like, write_png
from bridge.upstream.world import World, default_world

log = logging.getLogger(__name__)

_new_ids = itertools.count(3_900_000_000)


class NotFound(BridgeError, LookupError):
    """An inject named a contact the account does not have."""


@dataclass(frozen=True, slots=True)
class SimSettings:
    """How the simulated account behaves."""

    listen: tuple[str, int] | None = ("127.0.0.1", 5001)
    login_delay: float = 0.2
    qrcode_path: Path = Path("mojo_webqq_qrcode_default.png")
    extra_friends: int = 0
    extra_groups: int = 0
    members_per_group: int = 0
    load_rate: float = 0.0
    load_seconds: float = 60.0


def _mime_base64(data: bytes) -> str:
    # Perl's MIME::Base64: a newline every 76 characters and at the end.
    b64 = base64.b64encode(data).decode()
    return "".join(b64[i : i + 76] + "\n" for i in range(0, len(b64), 76))


_C = TypeVar("_C", Friend, Group, GroupMember, Discuss, DiscussMember)


def _pick(items: Iterable[_C], oid: object, uid: int | None, what: str, missing: str) -> _C:
    """The first contact whose given id and uid (at least one) both match; NotFound else."""
    if oid is not None or uid is not None:
        for item in items:
            if oid in (None, item.id) and uid in (None, getattr(item, "uid", None)):
                return item
    msg = f"{what} {uid if uid is not None else oid} {missing}"
    raise NotFound(msg)


def _replace_prop(obj: Any, prop: str, value: object) -> Any:
    if prop not in type(obj).__struct_fields__ or prop in ("id", "member"):
        msg = f"{type(obj).__name__.lower()} has no changeable property {prop!r}"
        raise ValueError(msg)
    data = msgspec.to_builtins(obj)
    data[prop] = value
    return msgspec.convert(data, type(obj))


class SimulatedAccount:
    """The ``sim`` upstream."""

    kind = "sim"
    default_pacing = (0.0, 0.0)

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.state = "init"
        self.world = default_world(0, 0, 0)
        self._emit: Emit | None = None
        self._stopped = asyncio.Event()
        self._stopping = False
        self._login_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._load: asyncio.Task[None] | None = None
        self.load_sent = 0
        self.load_refused = 0
        # Openqq's message ids: (epoch seconds mod 10000) * 10000, +1 before each use.
        self._ids = itertools.count((int(time.time()) % 10000) * 10000 + 1)
        self.bound: tuple[str, int] | None = None

    # --- life --------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        """Start the control endpoint, log in, and serve until stopped or cancelled."""
        self._emit = emit
        await self._start_control()
        try:
            if await self._login_once() and self.settings.load_rate > 0:
                self.start_load(
                    inj.LoadRequest(
                        rate=self.settings.load_rate, seconds=self.settings.load_seconds
                    )
                )
            await self._stopped.wait()
        finally:
            if self._load is not None:
                self._load.cancel()
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None

    async def _set_state(self, new: str) -> None:
        old, self.state = self.state, new
        await self._send_event(ev.StateChange(params=(old, new)))

    async def _send_event(self, event: ev.Event) -> None:
        assert self._emit is not None
        await self._emit(event)

    async def _login(self) -> None:
        delay = self.settings.login_delay
        await self._set_state("loading")
        await asyncio.sleep(delay)
        await self._set_state("scaning")
        png = write_png(qr_like(f"openqq-bridge sim login {time.time()}"))
        await self._send_event(
            ev.InputQrcode(params=[str(self.settings.qrcode_path), _mime_base64(png)])
        )
        await asyncio.sleep(delay)
        await self._set_state("confirming")
        await asyncio.sleep(delay)
        await self._set_state("updating")
        s = self.settings
        # Building a big world takes a while; keep the loop responsive meanwhile.
        self.world = await asyncio.to_thread(
            default_world, s.extra_friends, s.extra_groups, s.members_per_group
        )
        await self._set_state("running")
        await self._send_event(ev.Login(params=(1,)))

    async def _login_once(self) -> bool:
        """Log in as a task stop() can cancel; True when the account is running."""
        if self._stopping:
            return False
        task = asyncio.get_running_loop().create_task(self._login())
        self._login_task = task
        try:
            # wait() does not raise when stop() cancels the login, only when run() is.
            await asyncio.wait([task])
        finally:
            if not task.done():
                task.cancel()
            self._login_task = None
        if task.cancelled():
            return False
        task.result()
        return True

    async def relogin(self) -> None:
        """Log in again, as after a QR scan: ids stay the same in the simulation."""
        await self._login_once()

    async def stop(self) -> None:
        """State stop, the stop event, then run() returns; nothing is emitted after them."""
        self._stopping = True
        login = self._login_task
        if login is not None and not login.done():
            # A login under way must not announce confirming/running/login after the stop.
            login.cancel()
            await asyncio.wait([login])
        if self._load is not None:
            self._load.cancel()
            self._load = None
        if self.state != "stop":
            await self._set_state("stop")
            await self._send_event(ev.Stop())
        self._stopped.set()

    def snapshot(self) -> Snapshot:
        """The world's contacts (shared objects: neither side changes them in place)."""
        w = self.world
        return Snapshot(
            user=w.user,
            friends=list(w.friends.values()),
            groups=list(w.groups.values()),
            discusses=list(w.discusses.values()),
        )

    # --- actions -----------------------------------------------------------------------
    def _outcome(self, content: str) -> SendOutcome:
        if self.state != "running":
            msg = f"account is {self.state}, not running"
            raise UpstreamUnavailable(msg)
        # The original rewrites < and > to full-width forms before sending (spec §4).
        sent = content.replace("<", "＜").replace(">", "＞")
        return SendOutcome(
            code=0,
            info="发送正常",
            msg_id=next(self._ids),
            time=int(time.time()),
            content=sent,
        )

    async def send_friend(self, friend: Friend, content: str) -> SendOutcome:
        """Deliver to a friend (always succeeds while running)."""
        return self._outcome(content)

    async def send_group(self, group: Group, content: str) -> SendOutcome:
        """Deliver to a group (always succeeds while running)."""
        return self._outcome(content)

    async def send_discuss(self, discuss: Discuss, content: str) -> SendOutcome:
        """Deliver to a discuss group (always succeeds while running)."""
        return self._outcome(content)

    async def send_sess(
        self, member: GroupMember | DiscussMember, via: Group | Discuss, content: str
    ) -> SendOutcome:
        """Temporary chat; works in the simulation (QQ blocked it for WebQQ)."""
        return self._outcome(content)

    async def ensure_members(self, group: Group) -> None:
        """Members of the simulated world are always loaded."""

    def _own_group(self, group: Group) -> Group:
        g = self.world.groups.get(group.id)
        if g is None:
            msg = f"the account is not in group {group.uid}"
            raise ActionFailed(msg)
        if g.role not in ("manage", "create"):
            msg = f"the account is not an admin of group {g.uid}"
            raise ActionFailed(msg)
        return g

    async def kick(self, group: Group, members: Sequence[GroupMember]) -> None:
        """Remove members; each leaves with a lose_group_member event."""
        g = self._own_group(group)
        for m in members:
            if m.role != "member" and g.role != "create":
                msg = f"member {m.uid} is the {m.role} of group {g.uid}"
                raise ActionFailed(msg)
        for m in members:
            g = msgspec.structs.replace(g, member=[x for x in g.member if x.id != m.id])
            self.world.groups[g.id] = g
            await self._send_event(ev.LoseGroupMember(params=(m, g)))

    async def shutup(self, group: Group, members: Sequence[GroupMember], seconds: int) -> None:
        """Mute members; admins and the owner cannot be muted."""
        g = self._own_group(group)
        for m in members:
            if m.role != "member":
                msg = f"member {m.uid} is the {m.role} of group {g.uid}"
                raise ActionFailed(msg)
        for m in members:
            await self._send_event(ev.GroupMemberShutup(params=(m, g, seconds)))

    # --- inbound (inject) ----------------------------------------------------------------
    def _group(self, gid: int | None, guid: int | None) -> Group:
        return _pick(self.world.groups.values(), gid, guid, "group", "not found")

    @staticmethod
    def _member(group: Group, mid: int | None, muid: int | None) -> GroupMember:
        return _pick(group.member, mid, muid, "member", f"not in group {group.uid}")

    def _friend(self, fid: int | None, fuid: int | None) -> Friend:
        return _pick(self.world.friends.values(), fid, fuid, "friend", "not found")

    def _discuss(self, did: int) -> Discuss:
        return _pick(self.world.discusses.values(), did, None, "discuss", "not found")

    @staticmethod
    def _discuss_member(d: Discuss, mid: str | None, muid: int | None) -> DiscussMember:
        return _pick(d.member, mid, muid, "member", f"not in discuss {d.id}")

    def _my_name_in(self, g: Group) -> str:
        me = next((m for m in g.member if m.id == self.world.user.id), None)
        return member_display(me) if me is not None else self.world.user.name

    def build(self, req: inj.Inject) -> ev.Event:
        """Apply an inject to the world and return the event the account receives."""
        w, me, now = self.world, self.world.user, int(time.time())
        common: dict[str, Any] = {"id": next(self._ids), "time": now}
        match req:
            case inj.InjectFriendMessage():
                f = self._friend(req.sender_id, req.sender_uid)
                return ev.ReceivedFriendMessage(
                    **common,
                    content=req.content,
                    sender=display_name(f),
                    sender_id=f.id,
                    sender_uid=f.uid,
                    receiver=me.name,
                    receiver_id=me.id,
                    receiver_uid=me.uid,
                )
            case inj.InjectGroupMessage():
                g = self._group(req.group_id, req.group_uid)
                m = self._member(g, req.sender_id, req.sender_uid)
                return ev.ReceivedGroupMessage(
                    **common,
                    content=req.content,
                    sender=member_name(m, w.friends),
                    sender_id=m.id,
                    sender_uid=m.uid,
                    receiver=self._my_name_in(g),
                    receiver_id=me.id,
                    receiver_uid=me.uid,
                    group=display_name(g),
                    group_id=g.id,
                    group_uid=g.uid,
                )
            case inj.InjectDiscussMessage():
                d = self._discuss(req.discuss_id)
                dm = self._discuss_member(d, req.sender_id, req.sender_uid)
                return ev.ReceivedDiscussMessage(
                    **common,
                    content=req.content,
                    sender=dm.name,
                    sender_id=int(dm.id),
                    sender_uid=dm.uid,
                    receiver=me.name,
                    receiver_id=me.id,
                    receiver_uid=me.uid,
                    discuss=d.name,
                    discuss_id=d.id,
                )
            case inj.InjectSessMessage():
                return self._sess(req, common)
            case inj.InjectNewFriend():
                f = Friend(
                    id=req.id or next(_new_ids),
                    uid=req.uid,
                    name=req.name,
                    markname=req.markname,
                    category=req.category,
                )
                w.friends[f.id] = f
                return ev.NewFriend(params=(f,))
            case inj.InjectLoseFriend():
                f = self._friend(req.id, req.uid)
                del w.friends[f.id]
                return ev.LoseFriend(params=(f,))
            case inj.InjectNewGroup():
                g = msgspec.convert(
                    {
                        "id": req.id or next(_new_ids),
                        "uid": req.uid,
                        "name": req.name,
                        "role": req.role,
                        "member": [
                            {**msgspec.to_builtins(m), "id": m.id or next(_new_ids)}
                            for m in req.members
                        ]
                        + [{"id": me.id, "uid": me.uid, "name": me.name}],
                    },
                    Group,
                )
                w.groups[g.id] = g
                return ev.NewGroup(params=(g,))
            case inj.InjectLoseGroup():
                g = self._group(req.group_id, req.group_uid)
                del w.groups[g.id]
                return ev.LoseGroup(params=(g,))
            case inj.InjectNewGroupMember():
                g = self._group(req.group_id, req.group_uid)
                m = GroupMember(
                    id=req.id or next(_new_ids),
                    uid=req.uid,
                    name=req.name,
                    card=req.card,
                    join_time=now,
                )
                g = msgspec.structs.replace(g, member=[*g.member, m])
                w.groups[g.id] = g
                return ev.NewGroupMember(params=(m, g))
            case inj.InjectLoseGroupMember():
                g = self._group(req.group_id, req.group_uid)
                m = self._member(g, req.id, req.uid)
                g = msgspec.structs.replace(g, member=[x for x in g.member if x.id != m.id])
                w.groups[g.id] = g
                return ev.LoseGroupMember(params=(m, g))
            case inj.InjectNewDiscussMember():
                d = self._discuss(req.discuss_id)
                dm = DiscussMember(id=str(req.id or next(_new_ids)), uid=req.uid, name=req.name)
                d = msgspec.structs.replace(d, member=[*d.member, dm])
                w.discusses[d.id] = d
                return ev.NewDiscussMember(params=(dm, d))
            case inj.InjectLoseDiscussMember():
                d = self._discuss(req.discuss_id)
                dm = self._discuss_member(d, req.id, req.uid)
                d = msgspec.structs.replace(d, member=[x for x in d.member if x.id != dm.id])
                w.discusses[d.id] = d
                return ev.LoseDiscussMember(params=(dm, d))
            case inj.InjectFriendPropertyChange():
                f = self._friend(req.id, req.uid)
                new_f: Friend = _replace_prop(f, req.property, req.value)
                w.friends[f.id] = new_f
                old = getattr(f, req.property)
                return ev.FriendPropertyChange(params=(new_f, req.property, old, req.value))
            case inj.InjectGroupPropertyChange():
                g = self._group(req.group_id, req.group_uid)
                new_g: Group = _replace_prop(g, req.property, req.value)
                w.groups[g.id] = new_g
                old = getattr(g, req.property)
                return ev.GroupPropertyChange(params=(new_g, req.property, old, req.value))
            case inj.InjectGroupMemberPropertyChange():
                g = self._group(req.group_id, req.group_uid)
                m = self._member(g, req.id, req.uid)
                new_m: GroupMember = _replace_prop(m, req.property, req.value)
                members = [new_m if x.id == m.id else x for x in g.member]
                w.groups[g.id] = msgspec.structs.replace(g, member=members)
                old = getattr(m, req.property)
                return ev.GroupMemberPropertyChange(params=(new_m, req.property, old, req.value))

    def _sess(self, req: inj.InjectSessMessage, common: dict[str, Any]) -> ev.Event:
        me = self.world.user
        if req.discuss_id is not None:
            d = self._discuss(req.discuss_id)
            dm = self._discuss_member(
                d, str(req.sender_id) if req.sender_id else None, req.sender_uid
            )
            return ev.ReceivedSessMessage(
                **common,
                content=req.content,
                sender=dm.name,
                sender_id=int(dm.id),
                sender_uid=dm.uid,
                receiver=me.name,
                receiver_id=me.id,
                receiver_uid=me.uid,
                via="discuss",
                discuss=d.name,
                discuss_id=d.id,
            )
        g = self._group(req.group_id, req.group_uid)
        m = self._member(g, req.sender_id, req.sender_uid)
        return ev.ReceivedSessMessage(
            **common,
            content=req.content,
            sender=member_name(m, self.world.friends),
            sender_id=m.id,
            sender_uid=m.uid,
            receiver=self._my_name_in(g),
            receiver_id=me.id,
            receiver_uid=me.uid,
            via="group",
            group=display_name(g),
            group_id=g.id,
            group_uid=g.uid,
        )

    async def inject(self, req: inj.Inject) -> ev.Event:
        """Make the account receive a message or event; returns what it emitted."""
        if self.state != "running" or self._stopping:
            msg = f"account is {self.state}, not running"
            raise UpstreamUnavailable(msg)
        event = self.build(req)
        await self._send_event(event)
        return event

    # --- load ------------------------------------------------------------------------------
    def start_load(self, req: inj.LoadRequest) -> None:
        """(Re)start generating group messages at ``req.rate`` per second."""
        if self._load is not None:
            self._load.cancel()
            self._load = None
        if req.rate > 0:
            group = (
                self._group(None, req.group_uid)
                if req.group_uid is not None
                else next(iter(self.world.groups.values()))
            )
            self._load = asyncio.get_running_loop().create_task(self._run_load(req, group))

    async def _run_load(self, req: inj.LoadRequest, group: Group) -> None:
        senders = [m for m in group.member if m.id != self.world.user.id] or group.member
        start = time.monotonic()
        sent = 0
        log.info(
            "load: %.0f group messages/s to %s for %.0fs",
            req.rate,
            group.uid,
            req.seconds,
        )
        total = max(1, int(req.rate * req.seconds))
        while sent < total:
            elapsed = time.monotonic() - start
            # On schedule; past the end, whatever is still due goes out at once.
            due = total if elapsed >= req.seconds else min(int(elapsed * req.rate) + 1, total)
            while sent < due:
                m = senders[sent % len(senders)]
                event = self.build(
                    inj.InjectGroupMessage(
                        group_id=group.id, sender_id=m.id, content=f"load {sent}"
                    )
                )
                sent += 1
                try:
                    await self._send_event(event)
                except BufferFull as exc:
                    # Refused loudly, as a real account's message would be: counted and logged.
                    self.load_refused += 1
                    if self.load_refused == 1 or self.load_refused % 1000 == 0:
                        log.warning(
                            "load: %d message(s) refused so far: %s", self.load_refused, exc
                        )
                    continue
                self.load_sent += 1
            await asyncio.sleep(0.002)
        log.info(
            "load finished: %d messages in %.1fs (%d refused)",
            sent,
            time.monotonic() - start,
            self.load_refused,
        )

    # --- control endpoint ----------------------------------------------------------------
    async def _start_control(self) -> None:
        if self.settings.listen is None:
            return
        host, port = self.settings.listen
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/sim/inject", self._h_inject)
        app.router.add_post("/sim/load", self._h_load)
        app.router.add_get("/sim/state", self._h_state)
        app.router.add_get("/sim/world", self._h_world)
        self._runner, self.bound = await start_site(app, host, port, "sim_listen")
        log.info("simulated account control on http://%s:%d/sim/inject", *self.bound)

    @staticmethod
    def _error(status: int, text: str) -> web.Response:
        return web.Response(
            status=status,
            body=encode({"code": status, "status": text}),
            content_type="application/json",
        )

    async def _h_inject(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            req = inj.INJECT_DECODER.decode(body)
            event = await self.inject(req)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            return self._error(400, f"invalid inject: {exc}")
        except NotFound as exc:
            return self._error(404, str(exc))
        except (UpstreamUnavailable, BufferFull) as exc:
            return self._error(503, str(exc))
        return web.Response(
            body=encode({"code": 0, "status": "injected", "event": event}),
            content_type="application/json",
        )

    async def _h_load(self, request: web.Request) -> web.Response:
        try:
            req = msgspec.json.decode(await request.read(), type=inj.LoadRequest)
            self.start_load(req)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._error(400, f"invalid load request: {exc}")
        except NotFound as exc:
            return self._error(404, str(exc))
        return web.Response(
            body=encode({"code": 0, "status": "started" if req.rate else "stopped"}),
            content_type="application/json",
        )

    async def _h_state(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=encode(
                {
                    "state": self.state,
                    "load_sent": self.load_sent,
                    "load_refused": self.load_refused,
                }
            ),
            content_type="application/json",
        )

    async def _h_world(self, _request: web.Request) -> web.Response:
        w: World = self.world
        return web.Response(
            body=encode(
                {
                    "user": w.user,
                    "friends": list(w.friends.values()),
                    "groups": list(w.groups.values()),
                    "discusses": list(w.discusses.values()),
                }
            ),
            content_type="application/json",
        )
