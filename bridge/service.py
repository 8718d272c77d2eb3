"""Bridge: one upstream account <-> the bus.

Upstream events are applied to the contact book, written to the client files, shown
(ShowMsg) and put in a bounded buffer; one loop publishes the buffer in order with
confirms. Commands are taken from the account's queues once the account is running; each
executed send is also published as a ``send_message`` event before its reply goes out.
Sends to one conversation run one at a time in arrival order, paced by the rate limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bridge import __version__
from bridge.bus.base import Bus
from bridge.bus.commands import CommandServer, handing_over
from bridge.bus.publisher import EventPublisher
from bridge.bus.topology import declare_account
from bridge.clientfiles import ClientFiles
from bridge.config import Settings
from bridge.core import commands as c
from bridge.core import events as ev
from bridge.core.contacts import ContactBook
from bridge.core.model import Group, GroupMember, basic, display_name
from bridge.core.pacing import KeyedLocks, Pacer
from bridge.core.ports import SendOutcome, Upstream
from bridge.core.routing import Names, event_key
from bridge.errors import ActionFailed, BufferFull, UpstreamUnavailable
from bridge.store import DoneStore

log = logging.getLogger(__name__)

#: Seconds between answering stop_client/relogin and doing it (the reply goes out first).
CONTROL_DELAY = 3.0
#: Events published at once, awaiting their confirms.
PUBLISH_WINDOW = 256


_Item = tuple[ev.Event, str, asyncio.Future[None] | None]


def _status(out: SendOutcome) -> str:
    """发送成功, 发送失败, or 发送结果未知 when the QQ side may have delivered it (code -3)."""
    if out.ok:
        return "发送成功"
    return c.STATUS_RESULT_UNKNOWN if out.code == c.CODE_RESULT_UNKNOWN else "发送失败"


class Bridge:
    """Runs one account: ``await bridge.run()`` until stopped."""

    def __init__(
        self,
        bus: Bus,
        names: Names,
        upstream: Upstream,
        options: Settings,
        *,
        store: DoneStore | None = None,
        files: ClientFiles | None = None,
        show: Callable[[ev.Event], None] | None = None,
        control_delay: float = CONTROL_DELAY,
    ) -> None:
        self.bus = bus
        self.names = names
        self.upstream = upstream
        self.opts = options
        self.control_delay = control_delay
        self.account = options.account
        self.contacts = ContactBook()
        self.state = "init"
        self.ready = asyncio.Event()
        self.started = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.starttime = int(time.time())
        self._files = files
        self._show = show
        self._buffer: asyncio.Queue[_Item] = asyncio.Queue(options.event_buffer)
        self._publishing: set[asyncio.Task[None]] = set()
        self._full_logged = False
        # message_id of events: unique per process run, cheap, and kept on re-publish.
        self._id_prefix = os.urandom(12).hex() + "-"
        self._ids = itertools.count(1)
        self.publisher = EventPublisher(bus, names, options.account)
        self.store = store or DoneStore(None)
        self.server = CommandServer(
            bus,
            names,
            options.account,
            self.execute,
            self.store,
            prefetch=options.prefetch,
        )
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
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        #: (routing key, message_id) of the events published once stopping began: the
        #: reports of the stop, which a ``run`` process posts to post_api before it exits.
        self.stop_reports: list[tuple[str, str]] = []

    # --- events ---------------------------------------------------------------------------
    async def emit(self, event: ev.Event) -> None:
        """Take an upstream event: BufferFull if no room frees up within buffer_wait."""
        await self._enqueue(event, None)

    async def _enqueue(self, event: ev.Event, done: asyncio.Future[None] | None) -> None:
        item: _Item = (event, f"{self._id_prefix}{next(self._ids):x}", done)
        try:
            self._buffer.put_nowait(item)
        except asyncio.QueueFull:
            if not self._full_logged:
                # Once per episode: under load a full buffer is ordinary back-pressure.
                self._full_logged = True
                log.warning(
                    "event buffer full (%d events): the upstream waits for the broker",
                    self._buffer.maxsize,
                )
            try:
                async with asyncio.timeout(self.opts.buffer_wait):
                    await self._buffer.put(item)
            except TimeoutError:
                msg = (
                    f"event buffer full ({self._buffer.maxsize} events) for"
                    f" {self.opts.buffer_wait:g}s: is the broker reachable? {event.KIND} refused"
                )
                log.error(msg)
                raise BufferFull(msg) from None
        if self._stopping:
            self.stop_reports.append((event_key(event.KIND, self.account), item[1]))
        self._observe(event)

    def _observe(self, event: ev.Event) -> None:
        if isinstance(event, ev.StateChange):
            self._on_state(event.params[1])
        else:
            self.contacts.apply(event)
        if self._files is not None:
            self._files.on_event(event)
        if self._show is not None:
            self._show(event)

    def _on_state(self, new: str) -> None:
        old, self.state = self.state, new
        log.info("account %s: state %s -> %s", self.account, old, new)
        if new == "running":
            snap = self.upstream.snapshot()
            self.contacts.load(snap.user, snap.friends, snap.groups, snap.discusses)
            self.ready.set()
        else:
            self.ready.clear()

    async def _publish_loop(self) -> None:
        # Many publishes in flight, each waiting for its own confirm: they are started in
        # buffer order, and the channel sends them in that order (per-conversation order).
        window = asyncio.Semaphore(PUBLISH_WINDOW)
        while True:
            event, mid, done = await self._buffer.get()
            await window.acquire()
            task = asyncio.get_running_loop().create_task(
                self._publish_one(event, mid, done, window)
            )
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _publish_one(
        self,
        event: ev.Event,
        mid: str,
        done: asyncio.Future[None] | None,
        window: asyncio.Semaphore,
    ) -> None:
        try:
            await self.publisher.publish(event, mid)
        finally:
            window.release()
            self._buffer.task_done()
            if self._full_logged and self._buffer.qsize() < self._buffer.maxsize // 2:
                self._full_logged = False
                log.warning("event buffer has room again (%d waiting)", self._buffer.qsize())
        if done is not None and not done.done():
            done.set_result(None)

    # --- running --------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self) -> None:
        """Declare the topology, log in, serve commands; return after a clean stop."""
        await declare_account(self.bus, self.names, self.account, self.opts.queue_type)
        publisher = self._spawn(self._publish_loop(), "publish")
        upstream = self._spawn(self.upstream.run(self.emit), "upstream")
        stop = self._spawn(self.stop_requested.wait(), "stop")
        try:
            ready = self._spawn(self.ready.wait(), "ready")
            await asyncio.wait({ready, upstream, stop}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if self.ready.is_set() and not upstream.done():
                await self.server.start()
                self.started.set()
                log.info("account %s running: serving commands", self.account)
                await asyncio.wait({upstream, stop}, return_when=asyncio.FIRST_COMPLETED)
            if upstream.done() and not upstream.cancelled() and upstream.exception():
                raise upstream.exception()  # type: ignore[misc]
        finally:
            await self._shutdown(upstream, publisher, stop)

    async def _shutdown(
        self,
        upstream: asyncio.Task[Any],
        publisher: asyncio.Task[Any],
        stop: asyncio.Task[Any],
    ) -> None:
        self._stopping = True
        stop.cancel()
        await self.server.stop()
        if not upstream.done():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.upstream.stop()
            try:
                async with asyncio.timeout(5):
                    await upstream
            except (TimeoutError, asyncio.CancelledError):
                upstream.cancel()
            except Exception:
                log.exception("upstream failed while stopping")
        try:
            async with asyncio.timeout(10):
                await self._buffer.join()
        except TimeoutError:
            log.error(
                "%d event(s) not confirmed by the broker at shutdown",
                self._buffer.qsize(),
            )
        publisher.cancel()
        for t in [*self._tasks, *self._publishing]:
            t.cancel()
        await asyncio.gather(publisher, *self._tasks, *self._publishing, return_exceptions=True)

    def request_stop(self) -> None:
        """Stop gracefully (SIGINT/SIGTERM, stop_client)."""
        self.stop_requested.set()

    # --- commands -------------------------------------------------------------------------
    async def execute(self, cmd: c.Command) -> object:
        """Carry out one command and return its Openqq-shaped reply."""
        book = self.contacts
        match cmd:
            case c.SendFriendMessage() | c.SendGroupMessage() | c.SendDiscussMessage():
                return await self._send(cmd)
            case c.SendSessMessage():
                return await self._send_sess(cmd)
            case c.KickGroupMember() | c.ShutupGroupMember():
                return await self._manage(cmd)
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
            case c.SearchFriend():
                return self._search(book.search_friends, cmd)
            case c.SearchGroup():
                return self._search(book.search_groups, cmd)
            case c.GetClientInfo():
                return c.ClientInfo(
                    account=self.account,
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
            msg = f"account {self.account} is {self.state}, not running"
            raise UpstreamUnavailable(msg) from None

    async def _deliver(
        self,
        key: tuple[str, int],
        send: Callable[[], Awaitable[SendOutcome]],
        report: Callable[[SendOutcome], ev.Event],
    ) -> c.SendReply:
        async with self._lanes.hold(key):
            await self._ready_or_raise()
            await self._pacer.wait(key)
            handing_over()
            out = await send()
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # The send_message report goes out before the reply, as in the original.
            await self._enqueue(report(out), done)
        await done
        return c.SendReply(code=out.code, id=out.msg_id, info=out.info, status=_status(out))

    def _sent(self, out: SendOutcome, origin: str) -> dict[str, Any]:
        user = self.contacts.user
        assert user is not None
        return {
            "id": out.msg_id,
            "time": out.time,
            "content": out.content,
            "code": out.code,
            "info": out.info,
            "ttl": out.ttl,
            "msg": _status(out),
            "from_": origin,
            "sender": user.name,
            "sender_id": user.id,
            "sender_uid": user.uid,
        }

    async def _send(
        self, cmd: c.SendFriendMessage | c.SendGroupMessage | c.SendDiscussMessage
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
                    lambda: up.send_friend(f, content),
                    lambda out: ev.SentFriendMessage(
                        **self._sent(out, cmd.from_),
                        receiver=display_name(f),
                        receiver_id=f.id,
                        receiver_uid=f.uid,
                    ),
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
                    lambda: up.send_group(g, content),
                    lambda out: ev.SentGroupMessage(
                        **{**self._sent(out, cmd.from_), "sender": book.own_name_in(g)},
                        group=display_name(g),
                        group_id=g.id,
                        group_uid=g.uid,
                    ),
                )
            case c.SendDiscussMessage():
                d = book.find_discuss(id=cmd.id)
                if d is None:
                    return c.SendReply(code=102, id=None, status="discuss not found")
                if not content:
                    return c.send_failure("消息内容为空 (content is empty)")
                return await self._deliver(
                    ("discuss", d.id),
                    lambda: up.send_discuss(d, content),
                    lambda out: ev.SentDiscussMessage(
                        **self._sent(out, cmd.from_), discuss=d.name, discuss_id=d.id
                    ),
                )

    async def _send_sess(self, cmd: c.SendSessMessage) -> c.SendReply:
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
                lambda: up.send_sess(m, g, content),
                lambda out: ev.SentSessMessage(
                    **{**self._sent(out, cmd.from_), "sender": book.own_name_in(g)},
                    receiver=book.member_name(m),
                    receiver_id=m.id,
                    receiver_uid=m.uid,
                    via="group",
                    group=display_name(g),
                    group_id=g.id,
                    group_uid=g.uid,
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
                lambda: up.send_sess(dm, d, content),
                lambda out: ev.SentSessMessage(
                    **self._sent(out, cmd.from_),
                    receiver=dm.name,
                    receiver_id=int(dm.id),
                    receiver_uid=dm.uid,
                    via="discuss",
                    discuss=d.name,
                    discuss_id=d.id,
                ),
            )
        return c.SendReply(code=105, id=None, status="discuss member or group member  not found")

    async def _manage(self, cmd: c.KickGroupMember | c.ShutupGroupMember) -> c.StatusReply:
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
        return await self._act(cmd, group, members)

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
    ) -> c.StatusReply:
        await self._ready_or_raise()
        try:
            async with self._lanes.hold(("group", group.id)):
                handing_over()
                if isinstance(cmd, c.KickGroupMember):
                    await self.upstream.kick(group, members)
                else:
                    await self.upstream.shutup(group, members, cmd.time)
        except ActionFailed as exc:
            log.warning("%s in group %s refused: %s", c.command_name(cmd), group.uid, exc)
            return c.StatusReply(code=201, status="failure")
        return c.StatusReply(code=0, status="success")
