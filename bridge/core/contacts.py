"""ContactBook: the bridge's view of the account's friends, groups and discuss groups.

Lookups follow reference/openqq-spec.md §3: every given criterion must match (AND), by exact
text comparison, first match in list order; no criteria means no match. The book is filled
from the upstream's contact snapshot at login and kept current by applying its events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from bridge.core import events as ev
from bridge.core.model import (
    Discuss,
    DiscussMember,
    Friend,
    Group,
    GroupMember,
    User,
    display_name,
    text_of,
)

T = TypeVar("T", Friend, Group, GroupMember, Discuss, DiscussMember)
Criteria = Mapping[str, object]


def _attr(obj: object, name: str) -> object:
    if name == "displayname" and isinstance(obj, Friend | Group):
        return display_name(obj)
    return getattr(obj, name, None)


def matches(obj: object, criteria: Criteria) -> bool:
    """True when every criterion equals the object's attribute as text (Perl ``eq``)."""
    return all(text_of(_attr(obj, k)) == text_of(v) for k, v in criteria.items())


def given(**criteria: object) -> dict[str, object]:
    """Only the criteria whose value was given (not None)."""
    return {k: v for k, v in criteria.items() if v is not None}


class _Index(Generic[T]):
    """Objects in list order, with id and uid indexes for the common lookups."""

    def __init__(self, key: Callable[[T], object]) -> None:
        self._key: Callable[[T], object] = key
        self.items: dict[object, T] = {}
        self._by_uid: dict[object, T] = {}

    def reset(self, objs: Iterable[T]) -> None:
        self.items = {self._key(o): o for o in objs}
        self._by_uid = {}
        for o in self.items.values():
            self._index_uid(o)

    def _index_uid(self, obj: T) -> None:
        uid = getattr(obj, "uid", None)
        if uid is not None:
            self._by_uid.setdefault(text_of(uid), obj)

    def put(self, obj: T) -> None:
        old = self.items.get(self._key(obj))
        self.items[self._key(obj)] = obj
        if old is not None:
            self._reindex()
        else:
            self._index_uid(obj)

    def remove(self, key: object) -> T | None:
        obj = self.items.pop(key, None)
        if obj is not None:
            self._reindex()
        return obj

    def _reindex(self) -> None:
        self._by_uid = {}
        for o in self.items.values():
            self._index_uid(o)

    def find(self, criteria: Criteria) -> T | None:
        if not criteria:
            return None
        if "id" in criteria:
            hit = self.items.get(criteria["id"])
            # ids compare as text; a miss by key falls back to a scan ("0123" != 123).
            candidates: Iterable[T] = [hit] if hit is not None else self.items.values()
        elif "uid" in criteria:
            hit = self._by_uid.get(text_of(criteria["uid"]))
            candidates = [hit] if hit is not None else []
            if hit is not None and not matches(hit, criteria):
                candidates = list(self.items.values())
        else:
            candidates = self.items.values()
        return next((o for o in candidates if matches(o, criteria)), None)

    def search(self, criteria: Criteria) -> list[T]:
        if not criteria:
            return []
        return [o for o in self.items.values() if matches(o, criteria)]


class ContactBook:
    """Friends, groups (with members) and discuss groups of one account."""

    def __init__(self) -> None:
        self.user: User | None = None
        self._friends: _Index[Friend] = _Index(lambda f: f.id)
        self._groups: _Index[Group] = _Index(lambda g: g.id)
        self._discusses: _Index[Discuss] = _Index(lambda d: d.id)
        self._members: dict[int, _Index[GroupMember]] = {}

    # --- loading -----------------------------------------------------------------------
    def load(
        self,
        user: User,
        friends: Iterable[Friend],
        groups: Iterable[Group],
        discusses: Iterable[Discuss],
    ) -> None:
        """Replace everything with a fresh snapshot (login, relogin)."""
        self.user = user
        self._friends.reset(friends)
        self._groups.reset(groups)
        self._discusses.reset(discusses)
        self._members = {}
        for g in self._groups.items.values():
            self._index_members(g)

    def _index_members(self, group: Group) -> None:
        idx: _Index[GroupMember] = _Index(lambda m: m.id)
        idx.reset(group.member)
        self._members[group.id] = idx

    # --- reads -------------------------------------------------------------------------
    @property
    def friends(self) -> list[Friend]:
        """Every friend, in list order."""
        return list(self._friends.items.values())

    @property
    def groups(self) -> list[Group]:
        """Every group, in list order."""
        return list(self._groups.items.values())

    @property
    def discusses(self) -> list[Discuss]:
        """Every discuss group, in list order."""
        return list(self._discusses.items.values())

    def find_friend(self, **criteria: object) -> Friend | None:
        """The first friend matching every given criterion (id, uid, name, displayname)."""
        return self._friends.find(given(**criteria))

    def find_group(self, **criteria: object) -> Group | None:
        """The first group matching every given criterion (id, uid, name, displayname)."""
        return self._groups.find(given(**criteria))

    def find_discuss(self, **criteria: object) -> Discuss | None:
        """The first discuss group matching every given criterion (normally id)."""
        return self._discusses.find(given(**criteria))

    def find_member(self, group: Group, **criteria: object) -> GroupMember | None:
        """The member of ``group`` matching every given criterion (id, uid)."""
        idx = self._members.get(group.id)
        return idx.find(given(**criteria)) if idx is not None else None

    @staticmethod
    def find_discuss_member(discuss: Discuss, **criteria: object) -> DiscussMember | None:
        """The member of ``discuss`` matching every given criterion (id, uid)."""
        crit = given(**criteria)
        if not crit:
            return None
        return next((m for m in discuss.member if matches(m, crit)), None)

    def search_friends(self, criteria: Criteria) -> list[Friend]:
        """Every friend matching every criterion; no criteria, no result."""
        return self._friends.search(given(**criteria))

    def search_groups(self, criteria: Criteria) -> list[Group]:
        """Every group matching every criterion; no criteria, no result."""
        return self._groups.search(given(**criteria))

    def own_name_in(self, group: Group) -> str:
        """The account's display name inside a group: its card, else its nick."""
        user = self.user
        if user is None:
            return ""
        me = self.find_member(group, id=user.id)
        if me is not None and me.card:
            return me.card
        return user.name

    # --- updates -----------------------------------------------------------------------
    def apply(self, event: ev.Event) -> None:
        """Bring the book up to date with one upstream event (messages change nothing)."""
        match event:
            case ev.NewFriend(params=(f,)) | ev.FriendPropertyChange(params=(f, *_)):
                self._friends.put(f)
            case ev.LoseFriend(params=(f,)):
                self._friends.remove(f.id)
            case (
                ev.NewGroup(params=(g,))
                | ev.UpdateGroup(params=(g,))
                | ev.GroupPropertyChange(params=(g, *_))
                | ev.NewGroupMember(params=(_, g))
                | ev.LoseGroupMember(params=(_, g))
            ):
                self._groups.put(g)
                self._index_members(g)
            case (
                ev.GroupMemberPropertyChange(params=(m, *_))
                | ev.GroupMemberShutup(params=(m, _, _))
            ):
                self._replace_member(m)
            case ev.LoseGroup(params=(g,)):
                self._groups.remove(g.id)
                self._members.pop(g.id, None)
            case (
                ev.NewDiscuss(params=(d,))
                | ev.NewDiscussMember(params=(_, d))
                | ev.LoseDiscussMember(params=(_, d))
            ):
                self._discusses.put(d)
            case ev.LoseDiscuss(params=(d,)):
                self._discusses.remove(d.id)
            case ev.UserPropertyChange(params=(u, *_)):
                self.user = u
            case _:
                pass

    def _replace_member(self, member: GroupMember) -> None:
        for gid, idx in self._members.items():
            if member.id in idx.items:
                idx.put(member)
                group = self._groups.items[gid]
                group.member = list(idx.items.values())
