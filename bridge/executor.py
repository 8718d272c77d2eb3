"""Executor: carries out one decoded command against the upstream and returns its reply.

It owns what a command does: contact lookups, the per-conversation lanes (sends to one
conversation run one at a time in arrival order), the pacing, and the ``send_message`` report of
each executed send, which goes out before the reply. Right before it hands an action to the QQ
side it calls the ``handover`` it was given (the command server records the command as started
there, durably, and refuses commands whose caller stopped waiting): an explicit call, so a crash
after it is answered "result unknown" and never sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from bridge import __version__
from bridge.config import Settings
from bridge.core import commands as c
from bridge.core import events as ev
from bridge.core import messages as msgs
from bridge.core.contacts import ContactBook
from bridge.core.model import Group, GroupMember, basic
from bridge.core.pacing import KeyedLocks, Pacer
from bridge.core.pages import contacts_page
from bridge.core.ports import SendOutcome, Upstream
from bridge.errors import ActionFailed, UpstreamUnavailable
from bridge.metrics import OFF, Metrics

log = logging.getLogger(__name__)

#: Called right before an action reaches the QQ side (see the module docstring).
Handover = Callable[[], Awaitable[None]]
#: Puts an event in the outbox; the future is set once the broker confirmed it.
Report = Callable[[ev.Event, asyncio.Future[None] | None], Awaitable[None]]


def status_of(out: SendOutcome) -> str:
    """发送成功, 发送失败, or 发送结果未知 when the QQ side may have delivered it (code -3)."""
    if out.ok:
        return "发送成功"
    return c.STATUS_RESULT_UNKNOWN if out.code == c.CODE_RESULT_UNKNOWN else "发送失败"


def active_id() -> str:
    """This process as get_client_info and the logs name the active bridge: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


#: A pacing wait shorter than this (seconds) is the event loop's own delay, not pacing.
PACED = 0.001


class Executor:
    """Runs commands for one account; ``await executor.execute(cmd, handover)``."""

    def __init__(
        self,
        upstream: Upstream,
        contacts: ContactBook,
        options: Settings,
        *,
        report: Report,
        ready: asyncio.Event,
        state: Callable[[], str],
        request_stop: Callable[[], None],
        spawn: Callable[[Awaitable[Any], str], object],
        control_delay: float,
        metrics: Metrics = OFF,
    ) -> None:
        self.upstream = upstream
        self._paced = metrics.pacing_waits.labels(options.account)
        self._paced_seconds = metrics.pacing_wait_seconds.labels(options.account)
        self.contacts = contacts
        self.opts = options
        self.account = options.account
        self.control_delay = control_delay
        self.starttime = int(time.time())
        self._report = report
        self.ready = ready
        self._state = state
        self.request_stop = request_stop
        self._spawn = spawn
        # Unset intervals take the upstream's defaults (real accounts get risk-controlled).
        default_global, default_target = upstream.default_pacing
        self._pacer = Pacer(
            default_global if options.send_interval is None else options.send_interval,
            (
                default_target
                if options.send_interval_per_target is None
                else options.send_interval_per_target
            ),
        )
        self._lanes = KeyedLocks()

    # --- commands -------------------------------------------------------------------------
    async def execute(self, cmd: c.Command, handover: Handover) -> object:
        """Carry out one command and return its Openqq-shaped reply."""
        book = self.contacts
        match cmd:
            case c.SendFriendMessage() | c.SendGroupMessage() | c.SendDiscussMessage():
                return await self._send(cmd, handover)
            case c.SendSessMessage():
                return await self._send_sess(cmd, handover)
            case c.KickGroupMember() | c.ShutupGroupMember():
                return await self._manage(cmd, handover)
            case c.GetUserInfo():
                return book.user
            case c.GetFriendInfo():
                return book.friends
            case c.GetGroupInfo():
                return book.groups
            case c.GetGroupBasicInfo():
                return [basic(g) for g in book.groups]
            case c.GetDiscussInfo():
                return book.discusses
            case c.GetContactsPage():
                return contacts_page(book, cmd)
            case c.SearchFriend():
                return self._search(book.search_friends, cmd)
            case c.SearchGroup():
                return self._search(book.search_groups, cmd)
            case c.GetClientInfo():
                return c.ClientInfo(
                    account=self.account,
                    active=active_id(),
                    log_level=self.opts.log_level,
                    os=sys.platform,
                    pid=os.getpid(),
                    runtime=int(time.time()) - self.starttime,
                    starttime=self.starttime,
                    version=__version__,
                )
            case c.StopClient():
                self._later(self.request_stop)
                return c.StopReply(
                    account=self.account,
                    pid=os.getpid(),
                    runtime=int(time.time()) - self.starttime,
                    starttime=self.starttime,
                    status=f"success, client({os.getpid()}) will stop in 3 seconds",
                )
            case c.Relogin():
                self._later(lambda: self._spawn(self.upstream.relogin(), "relogin"))
                return c.ReloginReply(
                    account=self.account,
                    status=f"success, client({os.getpid()}) will relogin in 3 seconds",
                )

    @staticmethod
    def _search(search: Callable[[dict[str, object]], list[Any]], cmd: Any) -> object:
        criteria = {f: getattr(cmd, f) for f in cmd.__struct_fields__}
        found = search(criteria)
        return found or c.StatusReply(code=100, status="object not found")

    def _later(self, action: Callable[[], object]) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.control_delay, action)

    async def _ready_or_raise(self) -> None:
        if self.ready.is_set():
            return
        try:
            async with asyncio.timeout(self.opts.ready_wait):
                await self.ready.wait()
        except TimeoutError:
            msg = f"account {self.account} is {self._state()}, not running"
            raise UpstreamUnavailable(msg) from None

    async def _deliver(
        self,
        key: tuple[str, int],
        handover: Handover,
        send: Callable[[], Awaitable[SendOutcome]],
        report: Callable[[SendOutcome], ev.Event],
    ) -> c.SendReply:
        async with self._lanes.hold(key):
            await self._ready_or_raise()
            start = time.monotonic()
            await self._pacer.wait(key)
            waited = time.monotonic() - start
            if waited > PACED:
                self._paced.inc()
                self._paced_seconds.inc(waited)
            await handover()
            out = await send()
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # The send_message report goes out before the reply, as in the original.
            await self._report(report(out), done)
        await done
        return c.SendReply(code=out.code, id=out.msg_id, info=out.info, status=status_of(out))

    def _sent(
        self, out: SendOutcome, cmd: c.SendCommand, name: str | None = None
    ) -> tuple[msgs.Report, msgs.Party]:
        """The report of a send and its sender: the account (under ``name`` in a group)."""
        user = self.contacts.user
        assert user is not None
        report = msgs.Report(
            id=out.msg_id,
            time=out.time,
            content=out.content,
            code=out.code,
            info=out.info,
            ttl=out.ttl,
            msg=status_of(out),
            from_=cmd.from_,
            segments=cmd.segment_list or msgspec.UNSET,
        )
        return report, msgs.of_user(user, name)

    async def _send(
        self,
        cmd: c.SendFriendMessage | c.SendGroupMessage | c.SendDiscussMessage,
        handover: Handover,
    ) -> c.SendReply:
        book, up = self.contacts, self.upstream
        content = cmd.content
        match cmd:
            case c.SendFriendMessage():
                f = book.find_friend(
                    id=cmd.id, uid=cmd.uid, name=cmd.name, displayname=cmd.displayname
                )
                if f is None:
                    return c.SendReply(code=100, id=None, status="friend not found")
                if not content:
                    return c.send_failure("消息内容为空 (content is empty)")
                return await self._deliver(
                    ("friend", f.id),
                    handover,
                    lambda: up.send_friend(f, content, cmd.segment_list),
                    lambda out: msgs.sent_friend(*self._sent(out, cmd), msgs.of_friend(f)),
                )
            case c.SendGroupMessage():
                g = book.find_group(
                    id=cmd.id, uid=cmd.uid, name=cmd.name, displayname=cmd.displayname
                )
                if g is None:
                    return c.SendReply(code=101, id=None, status="group not found")
                if not content:
                    return c.send_failure("消息内容为空 (content is empty)")
                return await self._deliver(
                    ("group", g.id),
                    handover,
                    lambda: up.send_group(g, content, cmd.segment_list),
                    lambda out: msgs.sent_group(*self._sent(out, cmd, book.own_name_in(g)), g),
                )
            case c.SendDiscussMessage():
                d = book.find_discuss(id=cmd.id)
                if d is None:
                    return c.SendReply(code=102, id=None, status="discuss not found")
                if not content:
                    return c.send_failure("消息内容为空 (content is empty)")
                return await self._deliver(
                    ("discuss", d.id),
                    handover,
                    lambda: up.send_discuss(d, content, cmd.segment_list),
                    lambda out: msgs.sent_discuss(*self._sent(out, cmd), d),
                )

    async def _send_sess(self, cmd: c.SendSessMessage, handover: Handover) -> c.SendReply:
        book, up, content = self.contacts, self.upstream, cmd.content
        if cmd.group_id is not None or cmd.group_uid is not None:
            g = book.find_group(id=cmd.group_id, uid=cmd.group_uid)
            if g is not None:
                await self._members_of(g)
                g = book.find_group(id=g.id)
            m = book.find_member(g, id=cmd.id, uid=cmd.uid) if g is not None else None
            if g is None or m is None:
                return c.SendReply(code=103, id=None, status="group member not found")
            if not content:
                return c.send_failure("消息内容为空 (content is empty)")
            return await self._deliver(
                ("sess", m.id),
                handover,
                lambda: up.send_sess(m, g, content, cmd.segment_list),
                lambda out: msgs.sent_sess(
                    *self._sent(out, cmd, book.own_name_in(g)),
                    msgs.Party(book.member_name(m), m.id, m.uid),
                    g,
                ),
            )
        if cmd.discuss_id is not None:
            d = book.find_discuss(id=cmd.discuss_id)
            dm = (
                book.find_discuss_member(d, id=None if cmd.id is None else str(cmd.id), uid=cmd.uid)
                if d is not None
                else None
            )
            if d is None or dm is None:
                return c.SendReply(code=104, id=None, status="discuss member not found")
            if not content:
                return c.send_failure("消息内容为空 (content is empty)")
            return await self._deliver(
                ("sess", int(dm.id)),
                handover,
                lambda: up.send_sess(dm, d, content, cmd.segment_list),
                lambda out: msgs.sent_sess(*self._sent(out, cmd), msgs.of_discuss_member(dm), d),
            )
        return c.SendReply(code=105, id=None, status="discuss member or group member  not found")

    async def _manage(
        self, cmd: c.KickGroupMember | c.ShutupGroupMember, handover: Handover
    ) -> c.StatusReply:
        group = self.contacts.find_group(id=cmd.group_id, uid=cmd.group_uid)
        if group is None:
            return c.StatusReply(code=100, status="object not found")
        if isinstance(cmd, c.ShutupGroupMember) and cmd.time < 60:
            return c.StatusReply(code=400, status="shutup time missing or error")
        # member_id wins when present, even if empty (spec §2.12).
        field, values = (
            ("id", cmd.member_id) if cmd.member_id is not None else ("uid", cmd.member_uid)
        )
        if not values:
            return c.StatusReply(code=200, status="member id empty")
        await self._members_of(group)
        group = self.contacts.find_group(id=group.id) or group
        members: list[GroupMember] = []
        for value in values:
            m = self.contacts.find_member(group, **{field: value})
            if m is None:
                return c.StatusReply(code=100, status=f"member {value} not found")
            members.append(m)
        return await self._act(cmd, group, members, handover)

    async def _members_of(self, group: Group) -> None:
        # A real account loads member lists on demand; the lookup needs this one.
        try:
            await self.upstream.ensure_members(group)
        except ActionFailed as exc:
            log.warning("members of group %s could not be loaded: %s", group.uid, exc)

    async def _act(
        self,
        cmd: c.KickGroupMember | c.ShutupGroupMember,
        group: Group,
        members: list[GroupMember],
        handover: Handover,
    ) -> c.StatusReply:
        await self._ready_or_raise()
        try:
            async with self._lanes.hold(("group", group.id)):
                await handover()
                if isinstance(cmd, c.KickGroupMember):
                    await self.upstream.kick(group, members)
                else:
                    await self.upstream.shutup(group, members, cmd.time)
        except ActionFailed as exc:
            log.warning("%s in group %s refused: %s", c.command_name(cmd), group.uid, exc)
            return c.StatusReply(code=201, status="failure")
        return c.StatusReply(code=0, status="success")
