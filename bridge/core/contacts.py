"""ContactBook: the bridge's view of the account's friends, groups and discuss groups.

Lookups follow reference/openqq-spec.md §3: every given criterion must match (AND), by exact
text comparison, first match in list order; no criteria means no match. The book is filled
from the upstream's contact snapshot at login and kept current by applying its events.
"""

from __future__ import annotations

import bisect
import itertools
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Generic, NamedTuple, TypeVar

from bridge.core import events as ev
from bridge.core import members as mb
from bridge.core.model import (
    Discuss,
    DiscussMember,
    Friend,
    Group,
    GroupMember,
    User,
    display_name,
    member_display,
    text_of,
)

T = TypeVar("T", Friend, Group, GroupMember, Discuss, DiscussMember)
Criteria = Mapping[str, object]
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _attr(obj: object, name: str) -> object:
    # The original's searches also compare the value of these methods.
    if name == "displayname" and isinstance(obj, Friend | Group):
        return display_name(obj)
    if name == "member_count" and isinstance(obj, Group):
        return len(obj.member)
    return getattr(obj, name, None)


def matches(obj: object, criteria: Criteria) -> bool:
    """True when every criterion equals the object's attribute as text (Perl ``eq``)."""
    return all(text_of(_attr(obj, k)) == text_of(v) for k, v in criteria.items())


def given(**criteria: object) -> dict[str, object]:
    """Only the criteria whose value was given (not None)."""
    return {k: v for k, v in criteria.items() if v is not None}


def _number(value: object) -> int | None:
    """The int a value's text names, if it is written exactly as a decimal number."""
    text = text_of(value)
    return int(text) if _DECIMAL.fullmatch(text) else None


class _Index(Generic[T]):
    """Objects in list order, with id and uid indexes for the common lookups.

    Each object also gets a stamp when it enters the list, larger than every stamp before it
    (kept while it is replaced in place, never reused): the cursor of paged reads, which stays
    right while objects before it are removed (an offset would skip one).
    """

    def __init__(self, key: Callable[[T], int]) -> None:
        self._key: Callable[[T], int] = key
        self.items: dict[int, T] = {}
        # key -> stamp, in the order of items (both only ever append or drop keys).
        self._stamps: dict[int, int] = {}
        self._counter = itertools.count(1)
        # uid -> first object with it; the rare later ones in _more (placeholders, clashes).
        self._by_uid: dict[int, T] = {}
        self._more: dict[int, list[T]] = {}

    def reset(self, objs: Iterable[T]) -> None:
        self.items = {self._key(o): o for o in objs}
        self._stamps = {k: next(self._counter) for k in self.items}
        self._reindex()

    def _reindex(self) -> None:
        self._by_uid = {}
        self._more = {}
        for o in self.items.values():
            self._index_uid(o)

    def _index_uid(self, obj: T) -> None:
        number: int | None = getattr(obj, "uid", None)
        if number is None:
            return
        if number in self._by_uid:
            self._more.setdefault(number, []).append(obj)
        else:
            self._by_uid[number] = obj

    def put(self, obj: T) -> None:
        old = self.items.get(self._key(obj))
        self.items[self._key(obj)] = obj
        if old is not None:
            self._reindex()
        else:
            self._stamps[self._key(obj)] = next(self._counter)
            self._index_uid(obj)

    def remove(self, key: int) -> T | None:
        obj = self.items.pop(key, None)
        if obj is not None:
            del self._stamps[key]
            self._reindex()
        return obj

    def after(self, stamp: int) -> Iterator[tuple[int, T]]:
        """(stamp, object) of every object stamped after ``stamp``, in list order."""
        # List order is stamp order: the first one after the cursor is found by bisection.
        stamps = list(self._stamps.values())
        start = bisect.bisect_right(stamps, stamp)
        return zip(stamps[start:], itertools.islice(self.items.values(), start, None), strict=True)

    def _candidates(self, criteria: Criteria) -> Iterable[T]:
        # Ids compare as text (spec §3.1): only the exact decimal text of an id can match,
        # so an index hit, or nothing, is the whole answer.
        if "id" in criteria:
            key = _number(criteria["id"])
            hit = self.items.get(key) if key is not None else None
            return [hit] if hit is not None else []
        if "uid" in criteria:
            wanted = _number(criteria["uid"])
            first = self._by_uid.get(wanted) if wanted is not None else None
            if first is None or wanted is None:
                return []
            found = [first]
            found.extend(self._more.get(wanted, ()))
            return found
        return self.items.values()

    def find(self, criteria: Criteria) -> T | None:
        if not criteria:
            return None
        return next((o for o in self._candidates(criteria) if matches(o, criteria)), None)

    def search(self, criteria: Criteria) -> list[T]:
        if not criteria:
            return []
        return [o for o in self._candidates(criteria) if matches(o, criteria)]


def _member_candidates(members: Sequence[GroupMember], criteria: Criteria) -> Iterable[GroupMember]:
    # As _Index._candidates, from the member list itself: a packed list answers from its id
    # and uid columns, so no index of any group's members is kept.
    if "id" in criteria:
        number = _number(criteria["id"])
        return () if number is None else mb.matching(members, id=number)
    if "uid" in criteria:
        number = _number(criteria["uid"])
        return () if number is None else mb.matching(members, uid=number)
    return members


def member_name(member: GroupMember, friends: Mapping[int, Friend]) -> str:
    """A group member's name in messages, as Mojo::Webqq gives it (``sender``, ``receiver``).

    The markname the account gave the member as a friend first, then the group card, then
    the nick. ``friends`` maps friend ids to friends (members and friends share ids).
    """
    friend = friends.get(member.id)
    if friend is not None and friend.markname is not None:
        return friend.markname
    return member_display(member)


class WholeContact(NamedTuple):
    """A friend, group or discuss group an event carries whole, or removes."""

    contact: Friend | Group | Discuss
    removed: bool


def whole_contact(event: ev.Event) -> WholeContact | None:
    """The contact an event sets as a whole (or removes), None for other events.

    The one list of such events: the book applies them, and the adapter's replica lets a
    later one of the same contact supersede an earlier one while it loads.
    """
    match event:
        case ev.NewFriend(params=(f,)) | ev.FriendPropertyChange(params=(f, *_)):
            return WholeContact(f, removed=False)
        case (
            ev.NewGroup(params=(g,))
            | ev.UpdateGroup(params=(g,))
            | ev.GroupPropertyChange(params=(g, *_))
            | ev.NewGroupMember(params=(_, g))
            | ev.LoseGroupMember(params=(_, g))
        ):
            return WholeContact(g, removed=False)
        case (
            ev.NewDiscuss(params=(d,))
            | ev.NewDiscussMember(params=(_, d))
            | ev.LoseDiscussMember(params=(_, d))
        ):
            return WholeContact(d, removed=False)
        case ev.LoseFriend(params=(f,)):
            return WholeContact(f, removed=True)
        case ev.LoseGroup(params=(g,)):
            return WholeContact(g, removed=True)
        case ev.LoseDiscuss(params=(d,)):
            return WholeContact(d, removed=True)
        case _:
            return None


class ContactBook:
    """Friends, groups (with members) and discuss groups of one account."""

    def __init__(self) -> None:
        self.user: User | None = None
        self._friends: _Index[Friend] = _Index(lambda f: f.id)
        self._groups: _Index[Group] = _Index(lambda g: g.id)
        self._discusses: _Index[Discuss] = _Index(lambda d: d.id)
        #: Names this book's contents since its last load: pages of different generations
        #: do not fit together (their stamps are not comparable).
        self.generation = uuid.uuid4().hex[:16]

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
        self.generation = uuid.uuid4().hex[:16]
        self._friends.reset(friends)
        self._groups.reset(mb.compact_group(g) for g in groups)
        self._discusses.reset(discusses)

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

    def friends_after(self, stamp: int) -> Iterator[tuple[int, Friend]]:
        """(stamp, friend) of the friends after a page cursor, in list order."""
        return self._friends.after(stamp)

    def groups_after(self, stamp: int) -> Iterator[tuple[int, Group]]:
        """(stamp, group) of the groups after a page cursor, in list order."""
        return self._groups.after(stamp)

    def discusses_after(self, stamp: int) -> Iterator[tuple[int, Discuss]]:
        """(stamp, discuss group) of the discuss groups after a page cursor, in list order."""
        return self._discusses.after(stamp)

    def counts(self) -> tuple[int, int, int]:
        """How many friends, groups and discuss groups the book holds."""
        return len(self._friends.items), len(self._groups.items), len(self._discusses.items)

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
        current = self._groups.items.get(group.id, group)
        crit = given(**criteria)
        if not crit:
            return None
        return next((m for m in _member_candidates(current.member, crit) if matches(m, crit)), None)

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

    def member_name(self, member: GroupMember) -> str:
        """A group member's name in messages: friend markname, else card, else nick."""
        return member_name(member, self._friends.items)

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
        change = whole_contact(event)
        if change is not None:
            self._apply_whole(change)
            return
        match event:
            case (
                ev.GroupMemberPropertyChange(params=(m, *_))
                | ev.GroupMemberShutup(params=(m, _, _))
            ):
                self._replace_member(m)
            case ev.UserPropertyChange(params=(u, *_)):
                self.user = u
            case _:
                pass

    def _apply_whole(self, change: WholeContact) -> None:
        contact = change.contact
        if isinstance(contact, Friend):
            if change.removed:
                self._friends.remove(contact.id)
            else:
                self._friends.put(contact)
        elif isinstance(contact, Group):
            if change.removed:
                self._groups.remove(contact.id)
            else:
                self._groups.put(mb.compact_group(contact))
        elif change.removed:
            self._discusses.remove(contact.id)
        else:
            self._discusses.put(contact)

    def _replace_member(self, member: GroupMember) -> None:
        # The id columns say which groups hold the member; only those are decoded.
        for group in list(self._groups.items.values()):
            if mb.has_id(group.member, member.id):
                members = (member if m.id == member.id else m for m in group.member)
                self._groups.put(mb.with_members(group, members))
