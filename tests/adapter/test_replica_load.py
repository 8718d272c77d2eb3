"""The contact replica loads page by page and ends up equal to the bridge's book.

The RPC here answers from a real :class:`ContactBook` the way the bridge's executor does; a test
changes that book between pages and delivers the matching events to the replica, in the order
the bridge does it (book first, then the event).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec
import pytest

from bridge.adapters.openqq.replica import ContactReplica
from bridge.core import commands as c
from bridge.core import events as ev
from bridge.core.codec import encode
from bridge.core.contacts import ContactBook
from bridge.core.model import Discuss, DiscussMember, Friend, Group, GroupMember, User
from bridge.core.pages import contacts_page
from bridge.errors import RpcTimeout

USER = User(id=1, uid=1, name="me")


def group(gid: int, members: int, name: str | None = None) -> Group:
    return Group(
        id=gid,
        uid=gid,
        name=name or f"g{gid}",
        member=[GroupMember(id=gid * 10_000 + i, name=f"m{i}") for i in range(members)],
    )


def friend(fid: int, name: str | None = None) -> Friend:
    return Friend(id=fid, uid=fid, name=name or f"f{fid}")


def world(groups: int = 6, friends: int = 5) -> ContactBook:
    b = ContactBook()
    b.load(
        USER,
        [friend(100 + i) for i in range(friends)],
        [group(i, 3) for i in range(1, groups + 1)],
        [Discuss(id=900, name="d", member=[DiscussMember(id="7", name="x")])],
    )
    return b


class BookRpc:
    """Answers queries from ``book``; ``before`` runs before each answer (changes, events)."""

    def __init__(self, book: ContactBook, *, pages: bool = True) -> None:
        self.book = book
        self.pages = pages
        self.before: Callable[[c.Command], None] = lambda _: None
        self.fail: set[int] = set()
        self.calls: list[c.Command] = []
        self.fired = False

    def once(self, when: Callable[[c.Command], bool], action: Callable[[], None]) -> None:
        """Run ``action`` before the answer to the first command ``when`` picks."""

        def before(cmd: c.Command) -> None:
            if not self.fired and when(cmd):
                self.fired = True
                action()

        self.before = before

    async def call(self, account: str, cmd: c.Command, *, timeout: float) -> bytes:
        self.calls.append(cmd)
        await asyncio.sleep(0)  # a real call always waits for the broker
        if len(self.calls) in self.fail:
            raise RpcTimeout("no reply (test)")
        self.before(cmd)
        match cmd:
            case c.GetUserInfo():
                return encode(self.book.user)
            case c.GetContactsPage() if self.pages:
                return encode(contacts_page(self.book, cmd))
            case c.GetFriendInfo():
                return encode(self.book.friends)
            case c.GetGroupInfo():
                return encode(self.book.groups)
            case c.GetDiscussInfo():
                return encode(self.book.discusses)
            case _:
                status = c.StatusReply(code=c.CODE_INVALID_COMMAND, status="invalid command: test")
                return encode(status)


def replica_of(rpc: BookRpc, **options: float) -> ContactReplica:
    return ContactReplica(rpc, "default", timeout=1, page_entries=8, **options)  # type: ignore[arg-type]


def change(rpc: BookRpc, replica: ContactReplica, event: ev.Event) -> None:
    """What the bridge does: apply to its book, then publish (the replica receives it)."""
    rpc.book.apply(event)
    replica.on_event(event.KIND, encode(event))


def same(replica: ContactReplica, book: ContactBook) -> None:
    """The replica holds exactly the bridge's contacts, in the same order."""
    assert replica.book.user == book.user
    assert replica.book.friends == book.friends
    assert replica.book.groups == book.groups
    assert replica.book.discusses == book.discusses


def group_page(cmd: c.Command, after_first: bool = True) -> bool:
    return (
        isinstance(cmd, c.GetContactsPage)
        and cmd.kind == "group"
        and (cmd.after > 0) == after_first
    )


async def test_loads_page_by_page_within_the_budget():
    rpc = BookRpc(world(groups=6, friends=5))
    replica = replica_of(rpc)
    await replica.load()
    same(replica, rpc.book)
    pages = [x for x in rpc.calls if isinstance(x, c.GetContactsPage)]
    # 5 friends at 8 a page: 1; 6 groups of 4 entries: 3 pages of 2; 1 discuss group.
    assert [p.kind for p in pages] == ["friend", "group", "group", "group", "discuss"]
    assert all(p.max_entries == 8 for p in pages)
    assert replica.ready.is_set()


async def test_changes_while_pages_load_end_up_in_the_replica():
    rpc = BookRpc(world(groups=6))
    replica = replica_of(rpc)

    def changes() -> None:
        # Groups 1 and 2 were on the first page: 1 leaves, 2 is renamed, a member joins 2
        # (its event carries the whole group); 7 is new; a friend is renamed after its page.
        change(rpc, replica, ev.LoseGroup(params=(group(1, 3),)))
        change(rpc, replica, ev.GroupPropertyChange(params=(group(2, 3, "new"), "name", "", "")))
        joined = group(2, 4, "new")
        change(rpc, replica, ev.NewGroupMember(params=(joined.member[-1], joined)))
        change(rpc, replica, ev.NewGroup(params=(group(7, 1),)))
        change(rpc, replica, ev.FriendPropertyChange(params=(friend(101, "x"), "name", "", "")))

    rpc.once(group_page, changes)
    await replica.load()
    assert rpc.fired
    same(replica, rpc.book)
    assert [g.id for g in replica.book.groups] == [2, 3, 4, 5, 6, 7]
    assert [m.id for m in replica.book.groups[0].member][-1] == 20_003
    # Events after the load apply at once.
    change(rpc, replica, ev.LoseFriend(params=(friend(100),)))
    same(replica, rpc.book)


async def test_held_events_keep_only_the_latest_copy_of_each_group(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO, logger="bridge.adapters.openqq.replica")
    rpc = BookRpc(world(groups=4))
    replica = replica_of(rpc)

    def joins(cmd: c.Command) -> None:
        if group_page(cmd, after_first=False):
            for n in range(4, 40):
                g = group(1, n)
                change(rpc, replica, ev.NewGroupMember(params=(g.member[-1], g)))

    rpc.before = joins
    await replica.load()
    same(replica, rpc.book)
    assert "1 held events applied" in caplog.text


async def test_a_login_while_pages_load_starts_the_load_again():
    rpc = BookRpc(world(groups=6))
    replica = replica_of(rpc)

    def login() -> None:
        # A QR login: new ids. The bridge reloads its book (on running) and publishes login.
        rpc.book.load(USER, [friend(300)], [group(50, 2), group(51, 2)], [])
        replica.on_event("event.login", encode(ev.Login(params=(0,))))

    rpc.once(group_page, login)
    replica.reload()
    async with asyncio.timeout(5):
        await replica.ready.wait()
    assert rpc.fired
    same(replica, rpc.book)
    await replica.close()


async def test_a_reloaded_book_between_pages_starts_the_load_again(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO, logger="bridge.adapters.openqq.replica")
    rpc = BookRpc(world(groups=6))
    replica = replica_of(rpc)
    # No event: e.g. a standby bridge took over with a book of its own.
    rpc.once(
        group_page,
        lambda: rpc.book.load(USER, [friend(300)], [group(50, 2), group(1, 1), group(2, 1)], []),
    )
    await replica.load()
    assert rpc.fired
    same(replica, rpc.book)
    assert "reloaded its contacts while they were read; reading again" in caplog.text


async def test_a_page_without_answer_is_asked_again():
    rpc = BookRpc(world(groups=6))
    rpc.fail = {3}  # user, friends, then the first group page: no reply
    replica = replica_of(rpc)
    await replica.load()
    same(replica, rpc.book)


async def test_a_bridge_without_pages_is_read_whole(caplog: pytest.LogCaptureFixture):
    rpc = BookRpc(world(groups=6), pages=False)
    replica = replica_of(rpc)
    await replica.load()
    same(replica, rpc.book)
    assert "does not page contacts" in caplog.text


async def test_progress_is_logged_with_members_and_a_final_line(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="bridge.adapters.openqq.replica")
    rpc = BookRpc(world(groups=6))
    replica = replica_of(rpc, progress_every=0)
    await replica.load()
    assert (
        "contact replica of default: 12 of 18 members loaded (66 %), 4 of 6 groups" in caplog.text
    )
    final = [r.getMessage() for r in caplog.records if "loaded:" in r.getMessage()]
    assert final == [
        "contact replica of default loaded: 5 friends, 6 groups (18 members), 1 discuss groups"
        f" in {final[0].split(' in ')[1].split(' s ')[0]} s (5 pages, 0 held events applied)"
    ]


def test_page_answers_decode_only_as_their_kind():
    body = encode(contacts_page(world(), c.GetContactsPage(kind="friend")))
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(body, type=c.GroupPage)


def held_until(rpc: BookRpc) -> asyncio.Event:
    """Hold every answer of ``rpc`` until the returned event is set (a slow bridge)."""
    answer = rpc.call
    gate = asyncio.Event()

    async def held(account: str, cmd: c.Command, *, timeout: float) -> bytes:
        await gate.wait()
        return await answer(account, cmd, timeout=timeout)

    rpc.call = held  # type: ignore[method-assign]
    return gate


async def test_loaded_waits_for_a_load_under_way_and_no_longer() -> None:
    rpc = BookRpc(world())
    gate = held_until(rpc)
    r = replica_of(rpc)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert not await r.loaded(5), "no load under way: nothing to wait for"
    assert loop.time() - began < 0.5
    r.reload()
    assert not await r.loaded(0.05), "still loading after its wait"
    loop.call_later(0.05, gate.set)
    assert await r.loaded(5)
    assert r.book.groups == rpc.book.groups
    await r.close()


async def test_loaded_gives_up_when_the_load_fails() -> None:
    rpc = BookRpc(world())

    async def broken(account: str, cmd: c.Command, *, timeout: float) -> bytes:
        raise ValueError("not an answer (test)")

    rpc.call = broken  # type: ignore[method-assign]
    r = replica_of(rpc)
    r.reload()
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert not await r.loaded(5)
    assert loop.time() - began < 1
    await r.close()


async def test_answers_are_kept_until_the_book_changes() -> None:
    rpc = BookRpc(world())
    r = replica_of(rpc)
    await r.load()
    built: list[int] = []

    def friends() -> bytes:
        built.append(1)
        return encode(r.book.friends)

    first = r.answer("get_friend_info", friends)
    assert r.answer("get_friend_info", friends) is first
    assert len(built) == 1
    # A contact event changes the book: the answer is built anew and shows it.
    change(rpc, r, ev.FriendPropertyChange(params=(friend(101, "renamed"), "name", "", "")))
    again = r.answer("get_friend_info", friends)
    assert len(built) == 2
    assert b"renamed" in again and b"renamed" not in first
    # Other answers are kept apart.
    assert r.answer("get_user_info", lambda: encode(r.book.user)) == encode(USER)
    assert r.answer("get_friend_info", friends) is again
    # A new load (a login) changes it too.
    rpc.book.apply(ev.NewFriend(params=(friend(555),)))
    await r.load()
    assert b"555" in r.answer("get_friend_info", friends)
    assert len(built) == 3


async def test_loaded_follows_a_load_that_replaced_the_one_it_waited_for() -> None:
    rpc = BookRpc(world())
    gate = held_until(rpc)
    r = replica_of(rpc)
    r.reload()
    waiting = asyncio.ensure_future(r.loaded(5))
    await asyncio.sleep(0.01)
    r.reload()  # a login: the first load is cancelled, a new one starts
    await asyncio.sleep(0.01)
    assert not waiting.done()
    gate.set()
    assert await waiting
    await r.close()
