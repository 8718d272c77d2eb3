"""The simulated account's world: the example people and groups of the Openqq docs.

Names and numbers come from reference/openqq-api.md where they fit (小灰/123456,
灰灰/456789, PERL学习交流/67890, Mojo-Webqq开发/552603, discuss 测试). Extra generated
friends, groups and members make a large world for benchmarks. Lookups by id or uid raise
NotFound (the control endpoint answers 404).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from bridge.core import members as mb
from bridge.core.model import Discuss, DiscussMember, Friend, Group, GroupMember, User
from bridge.errors import BridgeError

ME_ID = 4072574066
ME_UID = 123456


class NotFound(BridgeError, LookupError):
    """An inject named a contact the account does not have."""


_C = TypeVar("_C", Friend, Group, GroupMember, Discuss, DiscussMember)


def _not_found(oid: object, uid: int | None, what: str, missing: str) -> NotFound:
    return NotFound(f"{what} {uid if uid is not None else oid} {missing}")


def _pick(items: Iterable[_C], oid: object, uid: int | None, what: str, missing: str) -> _C:
    """The first contact whose given id and uid (at least one) both match; NotFound else."""
    if oid is not None or uid is not None:
        for item in items:
            if oid in (None, item.id) and uid in (None, getattr(item, "uid", None)):
                return item
    raise _not_found(oid, uid, what, missing)


@dataclass
class World:
    """Contacts by id, in list order. Objects are never changed in place: replaced."""

    user: User
    friends: dict[int, Friend] = field(default_factory=dict)
    groups: dict[int, Group] = field(default_factory=dict)
    discusses: dict[int, Discuss] = field(default_factory=dict)

    # Lookups by id or uid (at least one given; both must match): NotFound else.
    def group(self, gid: int | None, guid: int | None) -> Group:
        """A group of the account."""
        return _pick(self.groups.values(), gid, guid, "group", "not found")

    @staticmethod
    def member(group: Group, mid: int | None, muid: int | None) -> GroupMember:
        """A member of ``group``."""
        # By the id and uid columns of a packed group: no scan of thousands of members.
        found = mb.first(group.member, id=mid, uid=muid)
        if found is None:
            raise _not_found(mid, muid, "member", f"not in group {group.uid}")
        return found

    def friend(self, fid: int | None, fuid: int | None) -> Friend:
        """A friend of the account."""
        return _pick(self.friends.values(), fid, fuid, "friend", "not found")

    def discuss(self, did: int) -> Discuss:
        """A discuss group of the account."""
        return _pick(self.discusses.values(), did, None, "discuss", "not found")

    @staticmethod
    def discuss_member(d: Discuss, mid: str | None, muid: int | None) -> DiscussMember:
        """A member of discuss group ``d``."""
        return _pick(d.member, mid, muid, "member", f"not in discuss {d.id}")


def default_world(
    extra_friends: int = 0, extra_groups: int = 0, members_per_group: int = 0
) -> World:
    """The example world, plus ``extra_*`` generated contacts for scale tests."""
    me = User(
        account=ME_UID,
        id=ME_ID,
        uid=ME_UID,
        name="小灰",
        city="北京",
        province="北京",
        country="中国",
        sex="male",
        birthday="1990-1-1",
        signature="这是我的个性签名",
    )
    huihui = Friend(id=2372835507, uid=456789, name="灰灰", category="我的好友", face=0)
    friends = [
        huihui,
        Friend(
            id=2457053936,
            uid=1234567,
            name="测试帐号1",
            markname="xxx",
            category="我的网友",
            is_vip=1,
            vip_level=6,
            face=153,
            state="offline",
            client_type="unknown",
        ),
        Friend(
            id=2475249571,
            uid=7891234,
            name="测试帐号2",
            markname="哈哈",
            category="我的家人",
            flag=32,
            face=168,
            state="offline",
            client_type="unknown",
        ),
    ]
    friends += [
        Friend(id=3_000_000_000 + i, uid=10_000_000 + i, name=f"好友{i}")
        for i in range(extra_friends)
    ]
    bot_admin = GroupMember(id=ME_ID, uid=ME_UID, name="小灰", card="小灰卡", role="admin")
    perl = Group(
        id=2617047292,
        uid=67890,
        name="PERL学习交流",
        code=2617047292,
        role="manage",
        owner_id=2832277643,
        owner_uid=45678,
        max_member=2000,
        max_admin=10,
        member=[
            GroupMember(
                id=2832277643,
                uid=45678,
                name="Perl大神",
                role="owner",
                city="大连",
                province="辽宁",
                country="中国",
                sex="male",
                last_speak_time=1453449884,
            ),
            bot_admin,
            GroupMember(id=2372835507, uid=456789, name="灰灰", role="member"),
            GroupMember(id=2457053936, uid=1234567, name="测试帐号1", card="小测"),
            GroupMember(id=2000000001, uid=88888, name="路人甲"),
        ],
    )
    mojo = Group(
        id=2617047293,
        uid=552603,
        name="Mojo-Webqq开发",
        markname="开发群",
        code=2617047293,
        role="create",
        owner_id=ME_ID,
        owner_uid=ME_UID,
        max_member=500,
        max_admin=10,
        member=[
            GroupMember(id=ME_ID, uid=ME_UID, name="小灰", role="owner"),
            GroupMember(id=2372835507, uid=456789, name="灰灰", role="admin"),
            GroupMember(id=2000000002, uid=123455, name="小明"),
        ],
    )
    groups = [perl, mojo]
    for g in range(extra_groups):
        gid = 4_000_000_000 + g
        members = [GroupMember(id=ME_ID, uid=ME_UID, name="小灰", role="admin")]
        members += [
            GroupMember(
                id=5_000_000_000 + g * 10_000 + m,
                uid=50_000_000 + g * 10_000 + m,
                name=f"成员{m}",
            )
            for m in range(max(members_per_group - 1, 0))
        ]
        # Packed at once: only one generated group's structs are alive at a time.
        groups.append(
            Group(
                id=gid,
                uid=200_000 + g,
                name=f"压测群{g}",
                role="manage",
                member=mb.compact(members),
            )
        )
    discuss = Discuss(
        id=4118239384,
        name="测试",
        owner_id=ME_ID,
        member=[
            DiscussMember(id=str(ME_ID), uid=ME_UID, name="小灰"),
            DiscussMember(id="2475249571", uid=7891234, name="哈哈", state="offline"),
            DiscussMember(id="2372835507", uid=456789, name="灰灰"),
        ],
    )
    return World(
        user=me,
        friends={f.id: f for f in friends},
        groups={g.id: mb.compact_group(g) for g in groups},
        discusses={discuss.id: discuss},
    )
