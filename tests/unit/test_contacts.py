from typing import TypeVar

import msgspec
import pytest

from bridge.core import events as ev
from bridge.core import members
from bridge.core.contacts import ContactBook
from bridge.core.model import Friend, Group, GroupMember, basic
from bridge.upstream.sim.world import default_world

T = TypeVar("T")


@pytest.fixture(autouse=True, params=["plain", "packed"])
def packing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test twice: small groups as plain lists, and every group packed (bridge.core.members)."""
    if request.param == "packed":
        monkeypatch.setattr(members, "PACK_AT", 1)


def must(x: T | None) -> T:
    assert x is not None
    return x


def book() -> ContactBook:
    w = default_world()
    b = ContactBook()
    b.load(w.user, w.friends.values(), w.groups.values(), w.discusses.values())
    return b


def test_lookup_ands_every_given_criterion():
    b = book()
    assert must(b.find_group(uid=67890)).name == "PERL学习交流"
    assert b.find_group(id=2617047292, uid=67890) is not None
    # id of one group, uid of another: no match (AND, not OR).
    assert b.find_group(id=2617047292, uid=552603) is None
    assert b.find_group() is None


def test_lookup_compares_text_exactly():
    b = book()
    assert b.find_friend(uid="0456789") is None
    assert must(b.find_friend(uid="456789")).name == "灰灰"
    assert b.find_friend(name="灰") is None
    assert b.find_friend(name="灰灰 ") is None


def test_displayname_is_markname_else_name():
    b = book()
    assert must(b.find_friend(displayname="哈哈")).uid == 7891234
    assert b.find_friend(displayname="测试帐号2") is None
    assert must(b.find_friend(displayname="灰灰")).uid == 456789
    assert must(b.find_group(displayname="开发群")).uid == 552603


def test_search_returns_all_matches_and_nothing_without_criteria():
    b = book()
    assert [f.uid for f in b.search_friends({"state": "offline"})] == [1234567, 7891234]
    assert b.search_friends({}) == []
    assert b.search_friends({"uid": None}) == []
    assert [g.uid for g in b.search_groups({"role": "create"})] == [552603]


def test_members_by_id_or_uid():
    b = book()
    g = must(b.find_group(uid=67890))
    assert must(b.find_member(g, uid=456789)).name == "灰灰"
    assert b.find_member(g, id=2372835507, uid=1) is None
    assert b.own_name_in(g) == "小灰卡"
    assert b.own_name_in(must(b.find_group(uid=552603))) == "小灰"


def test_events_keep_the_book_current():
    b = book()
    f = Friend(id=99, uid=999, name="新朋友")
    b.apply(ev.NewFriend(params=(f,)))
    assert b.find_friend(uid=999) == f
    b.apply(ev.LoseFriend(params=(f,)))
    assert b.find_friend(uid=999) is None

    g = must(b.find_group(uid=67890))
    m = GroupMember(id=77, uid=777, name="新人")
    g2: Group = msgspec.structs.replace(g, member=[*g.member, m])
    b.apply(ev.NewGroupMember(params=(m, g2)))
    assert b.find_member(must(b.find_group(uid=67890)), uid=777) == m

    renamed = Friend(id=2372835507, uid=456789, name="灰灰", markname="老灰")
    b.apply(ev.FriendPropertyChange(params=(renamed, "markname", None, "老灰")))
    assert must(b.find_friend(displayname="老灰")).uid == 456789
    assert len(b.friends) == 3

    b.apply(ev.LoseGroup(params=(g2,)))
    assert b.find_group(uid=67890) is None


def test_basic_group_has_no_members():
    g = must(book().find_group(uid=67890))
    assert not hasattr(basic(g), "member")
    assert basic(g).uid == 67890


def test_member_name_is_friend_markname_then_card_then_nick():
    b = book()
    g = must(b.find_group(uid=67890))
    # A friend with a markname ("xxx") who has a group card ("小测"): the markname.
    assert b.member_name(must(b.find_member(g, uid=1234567))) == "xxx"
    # A friend without a markname: the card, else the nick.
    assert b.member_name(must(b.find_member(g, uid=456789))) == "灰灰"
    carded = GroupMember(id=2372835507, uid=456789, name="灰灰", card="灰卡")
    assert b.member_name(carded) == "灰卡"
    # Not a friend: card, else nick.
    assert b.member_name(must(b.find_member(g, uid=88888))) == "路人甲"
