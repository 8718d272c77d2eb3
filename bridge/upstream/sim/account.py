"""SimulatedAccount: a QQ account in memory, for the quick start, demos, tests and load.

It goes through the real client states (init, loading, scaning with a QR code PNG,
confirming, updating, running, stop: login.py), serves the example world of world.py, and
turns sends, kicks and mutes into the same events a real account would produce. Injects
(inject.py, through the control endpoint of control.py) become the messages and events it
receives; load.py generates group messages.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from bridge.core import events as ev
from bridge.core import members as mb
from bridge.core import messages as msgs
from bridge.core.model import (
    Discuss,
    DiscussMember,
    Friend,
    Group,
    GroupMember,
)
from bridge.core.ports import Emit, SendOutcome, Snapshot
from bridge.errors import ActionFailed, UpstreamUnavailable
from bridge.upstream.sim import inject as inj
from bridge.upstream.sim import login
from bridge.upstream.sim.control import Control
from bridge.upstream.sim.load import Load
from bridge.upstream.sim.settings import SimSettings
from bridge.upstream.sim.world import World, default_world

_new_ids = itertools.count(3_900_000_000)


def _replace_prop(obj: Any, prop: str, value: object) -> Any:
    if prop not in type(obj).__struct_fields__ or prop in ("id", "member"):
        msg = f"{type(obj).__name__.lower()} has no changeable property {prop!r}"
        raise ValueError(msg)
    # The member list is not a property: validated without it, kept as it is (packed or not).
    members = getattr(obj, "member", None)
    bare = obj if members is None else msgspec.structs.replace(obj, member=[])
    data = msgspec.to_builtins(bare)
    data[prop] = value
    new = msgspec.convert(data, type(obj))
    return new if members is None else msgspec.structs.replace(new, member=members)


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
        self._login = login.Login(
            lambda: login.sequence(self.settings, self._set_state, self._send_event, self._use)
        )
        self._load = Load(self.build, self._send_event)
        self._control = Control(self, settings.listen)
        # Openqq's message ids: (epoch seconds mod 10000) * 10000, +1 before each use.
        self._ids = itertools.count((int(time.time()) % 10000) * 10000 + 1)

    @property
    def bound(self) -> tuple[str, int] | None:
        """The control endpoint's address once it serves (None before, or when off)."""
        return self._control.bound

    @property
    def load_sent(self) -> int:
        """Generated messages the bridge took."""
        return self._load.sent

    @property
    def load_refused(self) -> int:
        """Generated messages the bridge refused (buffer full)."""
        return self._load.refused

    # --- life --------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        """Start the control endpoint, log in, and serve until stopped or cancelled."""
        self._emit = emit
        await self._control.start()
        try:
            if await self._login.once() and self.settings.load_rate > 0:
                self.start_load(
                    inj.LoadRequest(
                        rate=self.settings.load_rate, seconds=self.settings.load_seconds
                    )
                )
            await self._stopped.wait()
        finally:
            self._load.stop()
            await self._control.close()

    async def _set_state(self, new: str) -> None:
        old, self.state = self.state, new
        await self._send_event(ev.StateChange(params=(old, new)))

    async def _send_event(self, event: ev.Event) -> None:
        assert self._emit is not None
        await self._emit(event)

    def _use(self, world: World) -> None:
        self.world = world

    async def relogin(self) -> None:
        """Log in again, as after a QR scan: ids stay the same in the simulation."""
        await self._login.once()

    async def stop(self) -> None:
        """State stop, the stop event, then run() returns; nothing is emitted after them."""
        await self._login.cancel()
        self._load.stop()
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

    # Segments are accepted and sent as their content: the simulation has no media.
    async def send_friend(
        self, friend: Friend, content: str, segments: list[ev.Segment] | None = None
    ) -> SendOutcome:
        """Deliver to a friend (always succeeds while running)."""
        return self._outcome(content)

    async def send_group(
        self, group: Group, content: str, segments: list[ev.Segment] | None = None
    ) -> SendOutcome:
        """Deliver to a group (always succeeds while running)."""
        return self._outcome(content)

    async def send_discuss(
        self, discuss: Discuss, content: str, segments: list[ev.Segment] | None = None
    ) -> SendOutcome:
        """Deliver to a discuss group (always succeeds while running)."""
        return self._outcome(content)

    async def send_sess(
        self,
        member: GroupMember | DiscussMember,
        via: Group | Discuss,
        content: str,
        segments: list[ev.Segment] | None = None,
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
            g = mb.with_members(g, [x for x in g.member if x.id != m.id])
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
    def build(self, req: inj.Inject) -> ev.Event:
        """Apply an inject to the world and return the event the account receives."""
        w, me, now = self.world, self.world.user, int(time.time())
        # Every inject takes a message id, as before; only messages show it.
        msg_id = next(self._ids)
        match req:
            case inj.InjectFriendMessage():
                f = self.world.friend(req.sender_id, req.sender_uid)
                said = msgs.Said(msg_id, now, req.content)
                return msgs.received_friend(said, msgs.of_friend(f), msgs.of_user(me))
            case inj.InjectGroupMessage():
                g = self.world.group(req.group_id, req.group_uid)
                m = self.world.member(g, req.sender_id, req.sender_uid)
                return msgs.received_group(
                    msgs.Said(msg_id, now, req.content),
                    msgs.of_member(m, w.friends),
                    msgs.of_user(me, msgs.own_name_in(g, me)),
                    g,
                )
            case inj.InjectDiscussMessage():
                d = self.world.discuss(req.discuss_id)
                dm = self.world.discuss_member(d, req.sender_id, req.sender_uid)
                said = msgs.Said(msg_id, now, req.content)
                return msgs.received_discuss(said, msgs.of_discuss_member(dm), msgs.of_user(me), d)
            case inj.InjectSessMessage():
                return self._sess(req, msgs.Said(msg_id, now, req.content))
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
                f = self.world.friend(req.id, req.uid)
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
                w.groups[g.id] = mb.compact_group(g)
                return ev.NewGroup(params=(g,))
            case inj.InjectLoseGroup():
                g = self.world.group(req.group_id, req.group_uid)
                del w.groups[g.id]
                return ev.LoseGroup(params=(g,))
            case inj.InjectNewGroupMember():
                g = self.world.group(req.group_id, req.group_uid)
                m = GroupMember(
                    id=req.id or next(_new_ids),
                    uid=req.uid,
                    name=req.name,
                    card=req.card,
                    join_time=now,
                )
                g = mb.with_members(g, [*g.member, m])
                w.groups[g.id] = g
                return ev.NewGroupMember(params=(m, g))
            case inj.InjectLoseGroupMember():
                g = self.world.group(req.group_id, req.group_uid)
                m = self.world.member(g, req.id, req.uid)
                g = mb.with_members(g, [x for x in g.member if x.id != m.id])
                w.groups[g.id] = g
                return ev.LoseGroupMember(params=(m, g))
            case inj.InjectNewDiscussMember():
                d = self.world.discuss(req.discuss_id)
                dm = DiscussMember(id=str(req.id or next(_new_ids)), uid=req.uid, name=req.name)
                d = msgspec.structs.replace(d, member=[*d.member, dm])
                w.discusses[d.id] = d
                return ev.NewDiscussMember(params=(dm, d))
            case inj.InjectLoseDiscussMember():
                d = self.world.discuss(req.discuss_id)
                dm = self.world.discuss_member(d, req.id, req.uid)
                d = msgspec.structs.replace(d, member=[x for x in d.member if x.id != dm.id])
                w.discusses[d.id] = d
                return ev.LoseDiscussMember(params=(dm, d))
            case inj.InjectFriendPropertyChange():
                f = self.world.friend(req.id, req.uid)
                new_f: Friend = _replace_prop(f, req.property, req.value)
                w.friends[f.id] = new_f
                old = getattr(f, req.property)
                return ev.FriendPropertyChange(params=(new_f, req.property, old, req.value))
            case inj.InjectGroupPropertyChange():
                g = self.world.group(req.group_id, req.group_uid)
                new_g: Group = _replace_prop(g, req.property, req.value)
                w.groups[g.id] = new_g
                old = getattr(g, req.property)
                return ev.GroupPropertyChange(params=(new_g, req.property, old, req.value))
            case inj.InjectGroupMemberPropertyChange():
                g = self.world.group(req.group_id, req.group_uid)
                m = self.world.member(g, req.id, req.uid)
                new_m: GroupMember = _replace_prop(m, req.property, req.value)
                members = [new_m if x.id == m.id else x for x in g.member]
                w.groups[g.id] = mb.with_members(g, members)
                old = getattr(m, req.property)
                return ev.GroupMemberPropertyChange(params=(new_m, req.property, old, req.value))

    def _sess(self, req: inj.InjectSessMessage, said: msgs.Said) -> ev.Event:
        me = self.world.user
        if req.discuss_id is not None:
            d = self.world.discuss(req.discuss_id)
            dm = self.world.discuss_member(
                d, str(req.sender_id) if req.sender_id else None, req.sender_uid
            )
            return msgs.received_sess(said, msgs.of_discuss_member(dm), msgs.of_user(me), d)
        g = self.world.group(req.group_id, req.group_uid)
        m = self.world.member(g, req.sender_id, req.sender_uid)
        return msgs.received_sess(
            said,
            msgs.of_member(m, self.world.friends),
            msgs.of_user(me, msgs.own_name_in(g, me)),
            g,
        )

    async def inject(self, req: inj.Inject) -> ev.Event:
        """Make the account receive a message or event; returns what it emitted."""
        if self.state != "running" or self._login.stopping:
            msg = f"account is {self.state}, not running"
            raise UpstreamUnavailable(msg)
        event = self.build(req)
        await self._send_event(event)
        return event

    # --- load ------------------------------------------------------------------------------
    def start_load(self, req: inj.LoadRequest) -> None:
        """(Re)start generating group messages at ``req.rate`` per second (0 stops)."""
        self._load.stop()
        if req.rate > 0:
            group = (
                self.world.group(None, req.group_uid)
                if req.group_uid is not None
                else next(iter(self.world.groups.values()))
            )
            self._load.start(req, group, self.world.user.id)
