"""Packed member lists (bridge.core.members): same bytes, same answers as the plain list."""

import random

import msgspec
import pytest

from bridge.adapters.onebot.face import ENCODER as FACE_ENCODER
from bridge.core import events as ev
from bridge.core import members as mb
from bridge.core.codec import decode_event, encode
from bridge.core.contacts import ContactBook
from bridge.core.members import Members
from bridge.core.model import Group, GroupMember
from bridge.upstream.onebot.book import Book
from bridge.upstream.sim import inject as inj
from bridge.upstream.sim.account import SimulatedAccount
from bridge.upstream.sim.settings import SimSettings
from bridge.upstream.sim.world import NotFound, default_world


def people(n: int, *, base: int = 5_000_000_000) -> list[GroupMember]:
    """Members with every kind of field value the encoder must reproduce."""
    return [
        GroupMember(
            id=base + i,
            uid=None if i % 7 == 3 else 50_000_000 + i,
            name=f"成员{i} /\x01\"'\\",
            card=None if i % 2 else f"卡{i}",
            role="admin" if i % 11 == 0 else "member",
            join_time=1_453_449_884 + i,
            state="offline" if i % 5 == 0 else "online",
        )
        for i in range(n)
    ]


def group(members: list[GroupMember] | Members) -> Group:
    return Group(id=4_000_000_000, uid=200_000, name="压测群", member=members)


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 64, 200])
def test_packed_group_encodes_byte_for_byte_as_the_list(n: int) -> None:
    plain = people(n)
    packed = Members.pack(plain)
    assert encode(group(packed)) == encode(group(plain))
    assert FACE_ENCODER.encode(group(packed)) == FACE_ENCODER.encode(group(plain))
    # An event carrying the group, decoded: a plain list again, equal to the original.
    event = ev.UpdateGroup(params=(group(packed),))
    back = decode_event("event.update_group", encode(event))
    assert isinstance(back, ev.UpdateGroup)
    assert type(back.params[0].member) is list
    assert back.params[0].member == plain


def test_packed_members_are_a_read_only_sequence_equal_to_the_list() -> None:
    plain = people(100)
    packed = Members.pack(plain)
    assert len(packed) == 100
    assert list(packed) == plain
    assert packed == plain
    assert plain == packed
    assert group(packed) == group(plain)
    assert packed == Members.pack(plain)
    assert packed != plain[:-1]
    assert packed != [*plain[:-1], GroupMember(id=1, name="x")]
    assert packed[0] == plain[0]
    assert packed[-1] == plain[-1]
    assert packed[40:45] == plain[40:45]
    assert plain[33] in packed
    assert GroupMember(id=plain[33].id, name="other") not in packed
    with pytest.raises(IndexError):
        packed[100]
    assert not hasattr(packed, "append")


def test_lookups_by_id_and_uid_answer_as_a_scan() -> None:
    rng = random.Random(15)
    # Random ids and uids, some repeated: byte patterns of one number can straddle two.
    plain = [
        GroupMember(id=rng.choice([rng.getrandbits(40), 7, 2**40 + 7]), uid=u, name=str(i))
        for i, u in enumerate(rng.choice([None, rng.getrandbits(33), 9]) for _ in range(300))
    ]
    packed = Members.pack(plain)
    probes = {m.id for m in plain} | {m.uid or 0 for m in plain} | {0, 1, 2**63, 2**64 - 1}
    for number in probes:
        by_id = [m for m in plain if m.id == number]
        by_uid = [m for m in plain if m.uid == number]
        assert list(mb.matching(packed, id=number)) == by_id
        assert list(mb.matching(packed, uid=number)) == by_uid
        assert mb.has_id(packed, number) is bool(by_id)
        for uid in (None, 9, *(m.uid for m in by_id)):
            want = next((m for m in plain if m.id == number and uid in (None, m.uid)), None)
            assert mb.first(packed, id=number, uid=uid) == want
            assert mb.first(plain, id=number, uid=uid) == want
    assert mb.first(packed) is None
    assert mb.first(plain) is None


def test_compact_packs_big_lists_only() -> None:
    small = people(mb.PACK_AT - 1)
    assert mb.compact(small) is small
    assert isinstance(mb.compact(people(mb.PACK_AT)), Members)
    g = group(people(mb.PACK_AT))
    packed = mb.compact_group(g)
    assert isinstance(packed.member, Members)
    assert mb.compact_group(packed) is packed
    # Numbers the 64-bit columns cannot hold: the list is kept (correct, only bigger).
    huge = [*people(mb.PACK_AT), GroupMember(id=2**64, name="x")]
    assert mb.compact(huge) is huge
    for reserved in (
        GroupMember(id=1, uid=2**64 - 1, name="x"),
        GroupMember(id=2**64 - 1, uid=1, name="x"),
        GroupMember(id=-1, name="x"),
    ):
        no_room = [*people(mb.PACK_AT), reserved]
        assert mb.compact(no_room) is no_room


def test_book_keeps_big_groups_packed_through_updates() -> None:
    plain = people(300)
    b = ContactBook()
    w = default_world()
    b.load(w.user, [], [group(plain)], [])
    stored = b.groups[0]
    assert isinstance(stored.member, Members)
    assert b.find_member(stored, uid=plain[12].uid) == plain[12]
    assert b.find_member(stored, id=str(plain[12].id)) == plain[12]
    assert b.find_member(stored, id=f"0{plain[12].id}") is None

    changed = msgspec.structs.replace(plain[12], card="新卡")
    b.apply(ev.GroupMemberPropertyChange(params=(changed, "card", plain[12].card, "新卡")))
    stored = b.groups[0]
    assert isinstance(stored.member, Members)
    assert b.find_member(stored, id=plain[12].id) == changed
    assert list(stored.member) == [changed if m.id == changed.id else m for m in plain]

    joined = GroupMember(id=77, uid=777, name="新人")
    b.apply(ev.NewGroupMember(params=(joined, group([*plain, joined]))))
    assert isinstance(b.groups[0].member, Members)
    assert b.find_member(b.groups[0], uid=777) == joined


def test_simulated_world_packs_generated_groups_and_repacks_changes() -> None:
    sim = SimulatedAccount(SimSettings(listen=None, login_delay=0))
    sim.world = default_world(0, 1, 300)
    g = sim.world.group(None, 200_000)
    assert isinstance(g.member, Members)
    assert len(g.member) == 300
    assert sim.world.member(g, None, 50_000_005).name == "成员5"
    with pytest.raises(NotFound, match="member 1 not in group 200000"):
        sim.world.member(g, None, 1)

    sim.build(
        inj.InjectGroupMemberPropertyChange(
            group_uid=200_000, uid=50_000_005, property="card", value="卡"
        )
    )
    sim.build(inj.InjectNewGroupMember(group_uid=200_000, uid=60_000_000, name="新人"))
    sim.build(inj.InjectLoseGroupMember(group_uid=200_000, uid=50_000_006))
    sim.build(inj.InjectGroupPropertyChange(group_uid=200_000, property="memo", value="公告"))
    g = sim.world.group(None, 200_000)
    assert isinstance(g.member, Members)
    assert g.memo == "公告"
    assert len(g.member) == 300
    assert sim.world.member(g, None, 50_000_005).card == "卡"
    assert sim.world.member(g, None, 60_000_000).name == "新人"
    assert mb.first(g.member, uid=50_000_006) is None


def test_onebot_cache_keeps_big_groups_packed() -> None:
    book = Book()
    g = group(people(100))
    book.groups[g.id] = g
    updated = book.replace_members(g, people(100)[1:])
    assert isinstance(book.groups[g.id].member, Members)
    assert updated == book.groups[g.id]
    assert book.member(updated, 50_000_012).id == 5_000_000_012
