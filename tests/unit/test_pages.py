"""get_contacts_page: budgets, cursors and edges of paging the contact book."""

from __future__ import annotations

import msgspec
import pytest

from bridge.core import commands as c
from bridge.core import events as ev
from bridge.core.codec import decode_command, encode
from bridge.core.contacts import ContactBook
from bridge.core.model import Discuss, DiscussMember, Friend, Group, GroupMember, User
from bridge.core.pages import contacts_page

USER = User(id=1, uid=1, name="me")


def group(gid: int, members: int) -> Group:
    return Group(
        id=gid,
        uid=gid,
        name=f"g{gid}",
        member=[GroupMember(id=gid * 10_000 + i, name=f"m{i}") for i in range(members)],
    )


def book_of(groups: list[Group], friends: int = 0, discusses: int = 0) -> ContactBook:
    b = ContactBook()
    b.load(
        USER,
        [Friend(id=100 + i, uid=100 + i, name=f"f{i}") for i in range(friends)],
        groups,
        [
            Discuss(id=500 + i, name=f"d{i}", member=[DiscussMember(id=str(i), name="x")])
            for i in range(discusses)
        ],
    )
    return b


def every_page(b: ContactBook, kind: c.ContactKind, budget: int) -> list[c.ContactsPage]:
    pages: list[c.ContactsPage] = []
    after = 0
    while True:
        page = contacts_page(b, c.GetContactsPage(kind=kind, after=after, max_entries=budget))
        pages.append(page)
        if page.next is None:
            return pages
        after = page.next


def ids(page: c.ContactsPage) -> list[int]:
    return [x.id for x in page.items]


def test_an_empty_book_is_one_empty_last_page_of_each_kind():
    b = book_of([])
    for kind in ("friend", "group", "discuss"):
        (page,) = every_page(b, kind, 10)
        assert (page.items, page.next, page.total, page.members) == ([], None, 0, 0)
        assert page.generation == b.generation


def test_pages_hold_at_most_the_budget_a_contact_and_each_member_counting_one():
    b = book_of([group(i, 4) for i in range(1, 8)])  # 5 entries each
    pages = every_page(b, "group", 12)  # two groups a page (10), a third would be 15
    assert [ids(p) for p in pages] == [[1, 2], [3, 4], [5, 6], [7]]
    assert all(p.total == 7 and p.members == 28 for p in pages)
    assert [p.next is None for p in pages] == [False, False, False, True]


def test_a_group_bigger_than_the_budget_goes_alone_on_its_page():
    b = book_of([group(1, 1), group(2, 3000), group(3, 1)])
    pages = every_page(b, "group", 100)
    assert [ids(p) for p in pages] == [[1], [2], [3]]
    assert isinstance(pages[1], c.GroupPage)
    assert len(pages[1].items[0].member) == 3000


def test_a_last_page_that_fills_the_budget_exactly_says_so():
    b = book_of([group(1, 4), group(2, 4)])
    (page,) = every_page(b, "group", 10)
    assert ids(page) == [1, 2]
    assert page.next is None


def test_friends_count_one_entry_each_and_discusses_count_their_members():
    b = book_of([], friends=5, discusses=3)
    assert [ids(p) for p in every_page(b, "friend", 2)] == [[100, 101], [102, 103], [104]]
    assert [ids(p) for p in every_page(b, "discuss", 4)] == [[500, 501], [502]]
    assert every_page(b, "discuss", 4)[0].members == 3


def test_a_removal_before_the_cursor_skips_nothing_and_additions_come_last():
    b = book_of([group(i, 1) for i in range(1, 7)])
    first = contacts_page(b, c.GetContactsPage(kind="group", max_entries=4))
    assert ids(first) == [1, 2]
    # Between two pages: the first group leaves (an offset of 2 would now skip group 3), the
    # second is replaced in place, a new one joins.
    b.apply(ev.LoseGroup(params=(group(1, 1),)))
    b.apply(ev.GroupPropertyChange(params=(group(2, 2), "name", "old", "new")))
    b.apply(ev.NewGroup(params=(group(9, 1),)))
    assert first.next is not None
    rest = every_page_after(b, first.next)
    assert rest == [3, 4, 5, 6, 9]


def every_page_after(b: ContactBook, after: int) -> list[int]:
    got: list[int] = []
    while True:
        page = contacts_page(b, c.GetContactsPage(kind="group", after=after, max_entries=4))
        got += ids(page)
        if page.next is None:
            return got
        after = page.next


def test_a_group_removed_and_added_again_comes_after_the_cursor():
    b = book_of([group(i, 1) for i in range(1, 5)])
    first = contacts_page(b, c.GetContactsPage(kind="group", max_entries=4))
    assert first.next is not None
    b.apply(ev.LoseGroup(params=(group(1, 1),)))
    b.apply(ev.NewGroup(params=(group(1, 1),)))
    assert every_page_after(b, first.next) == [3, 4, 1]


def test_a_reload_changes_the_generation():
    b = book_of([group(1, 1)])
    before = b.generation
    b.apply(ev.NewGroup(params=(group(2, 1),)))
    assert b.generation == before
    b.load(USER, [], [group(1, 1)], [])
    assert b.generation != before


@pytest.mark.parametrize(
    "body",
    [
        {"command": "get_contacts_page", "kind": "member"},
        {"command": "get_contacts_page", "kind": "group", "after": -1},
        {"command": "get_contacts_page", "kind": "group", "after": 2**53},
        {"command": "get_contacts_page", "kind": "group", "max_entries": 0},
        {"command": "get_contacts_page", "kind": "group", "max_entries": c.MAX_PAGE_ENTRIES + 1},
        {"command": "get_contacts_page", "kind": "group", "after": "1"},
        {"command": "get_contacts_page"},
    ],
)
def test_invalid_page_commands_are_refused(body: dict[str, object]):
    with pytest.raises(msgspec.ValidationError):
        decode_command(msgspec.json.encode(body))


def test_the_page_answer_is_tagged_by_kind_and_decodes_to_its_type():
    b = book_of([group(1, 2)])
    body = encode(contacts_page(b, c.GetContactsPage(kind="group")))
    assert msgspec.json.decode(body)["kind"] == "group"
    page = msgspec.json.decode(body, type=c.ContactsPage)
    assert isinstance(page, c.GroupPage)
    assert page.items == [group(1, 2)]
    defaults = decode_command(b'{"command":"get_contacts_page","kind":"friend"}')
    assert defaults == c.GetContactsPage(kind="friend", after=0, max_entries=c.PAGE_ENTRIES)
