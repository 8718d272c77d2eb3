"""Pages of a contact book (get_contacts_page): what one page holds and where the next starts.

A page is bounded in entries (a contact counts 1, each of its members 1 more), so no answer
comes near the broker's message size limit however large the account; a contact bigger than
the whole budget still goes alone on its page. The cursor is the stamp the book gave the last
contact of the page (``ContactBook.*_after``), which stays right while contacts before it are
removed or replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from bridge.core import commands as c
from bridge.core.contacts import ContactBook
from bridge.core.model import Discuss, Friend, Group

T = TypeVar("T", Friend, Group, Discuss)


def _members(obj: Group | Discuss) -> int:
    return len(obj.member)


def _take(
    entries: Iterator[tuple[int, T]], budget: int, size: Callable[[T], int]
) -> tuple[list[T], int | None]:
    """The contacts of one page and the cursor of the next (None: nothing is left)."""
    items: list[T] = []
    used = 0
    last = 0
    for stamp, obj in entries:
        cost = 1 + size(obj)
        if items and used + cost > budget:
            return items, last
        items.append(obj)
        used += cost
        last = stamp
    return items, None


def contacts_page(book: ContactBook, cmd: c.GetContactsPage) -> c.ContactsPage:
    """The page ``cmd`` asks for."""
    friends, groups, discusses = book.counts()
    gen = book.generation
    budget = cmd.max_entries
    match cmd.kind:
        case "friend":
            fs, nxt = _take(book.friends_after(cmd.after), budget, lambda _: 0)
            return c.FriendPage(items=fs, next=nxt, total=friends, members=0, generation=gen)
        case "group":
            gs, nxt = _take(book.groups_after(cmd.after), budget, _members)
            members = sum(map(_members, book.groups))
            return c.GroupPage(items=gs, next=nxt, total=groups, members=members, generation=gen)
        case "discuss":
            ds, nxt = _take(book.discusses_after(cmd.after), budget, _members)
            members = sum(map(_members, book.discusses))
            return c.DiscussPage(
                items=ds, next=nxt, total=discusses, members=members, generation=gen
            )
