"""The OneBot account's own cache of its contacts (no I/O): what inbound translation reads.

The bridge's ContactBook is rebuilt from the snapshot and the events; this cache is what the
account answers ``snapshot()`` from and what events are translated against (names of senders,
the account's own card). Lookups never fail: an unknown group, member or friend is made up
from its number (and whatever the frame said), since QQ is the authority, not the cache.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bridge.core import members as mb
from bridge.core.model import Friend, Group, GroupMember, User


@dataclass
class Book:
    """The account, its friends and its groups (members loaded for the groups in ``loaded``)."""

    user: User = field(default_factory=lambda: User(id=0, uid=0, name=""))
    friends: dict[int, Friend] = field(default_factory=dict)
    groups: dict[int, Group] = field(default_factory=dict)
    loaded: set[int] = field(default_factory=set)

    @property
    def self_id(self) -> int:
        """The account's QQ number (0 before login)."""
        return self.user.uid or 0

    def group(self, gid: int) -> Group:
        """The cached group, or one made up from its number."""
        return self.groups.get(gid) or Group(id=gid, uid=gid, code=gid, name=str(gid))

    def member(self, group: Group, uid: int, fallback: GroupMember | None = None) -> GroupMember:
        """The cached member, else ``fallback``, else one made up from the number."""
        found = mb.first(group.member, uid=uid)
        if found is not None:
            return found
        return fallback or GroupMember(id=uid, uid=uid, name=str(uid))

    def friend(self, uid: int, nickname: str = "") -> Friend:
        """The cached friend, or a stranger with what the frame said."""
        return self.friends.get(uid) or Friend(
            id=uid, uid=uid, name=nickname or "昵称未知", category="陌生人"
        )

    def replace_members(self, group: Group, members: Iterable[GroupMember]) -> Group:
        """The group with these members, compacted (cached when the group is known)."""
        updated = mb.with_members(group, members)
        if group.id in self.groups:
            self.groups[group.id] = updated
        return updated

    def put_member(self, group: Group, member: GroupMember) -> Group:
        """Add or replace one member, when the group's member list is loaded."""
        if group.id not in self.loaded:
            return group
        others = [m for m in group.member if m.uid != member.uid]
        return self.replace_members(group, [*others, member])

    def drop_group(self, gid: int) -> Group:
        """Forget a group the account left (returns what was known of it)."""
        group = self.group(gid)
        self.groups.pop(gid, None)
        self.loaded.discard(gid)
        return group
