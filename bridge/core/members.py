"""Compact storage of large groups' member lists (issue 15).

A group of a few thousand members costs ~370 bytes a member as ``GroupMember`` structs; an
account in hundreds of such groups needs hundreds of MB. :class:`Members` keeps a big group's
members as zlib-compressed blocks of their bus JSON (~13 bytes a member in the simulated world)
plus two columns of ids and uids (16 bytes a member) that answer lookups without decoding.

``compact_group`` is the one place a group enters long-lived storage (the contact book, the
simulated world, the OneBot upstream's cache, the adapter's replica): groups of ``PACK_AT``
members or more get a :class:`Members`, smaller ones keep their plain list. On the wire
nothing changes: ``enc_hook`` makes every encoder write a :class:`Members` byte for byte as the
list it stands for, without decoding it, and decoders give a plain list back.
"""

from __future__ import annotations

import functools
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, Final, overload

import msgspec

from bridge.core.model import Group, GroupMember

#: Members in one compressed block: one lookup decodes one block (~15 us at 32).
BLOCK: Final = 32
#: Groups with at least this many members are packed; smaller ones stay plain lists.
PACK_AT: Final = 64
#: A uid of None in the uid column; no id or uid may be this (QQ numbers are far below it).
_NO_UID: Final = 2**64 - 1

# The bus encoding (bridge.core.codec): compact, keys sorted. Blocks must be bytes of it.
_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_DECODER: Final = msgspec.json.Decoder(list[GroupMember])


def _decode(block: bytes) -> list[GroupMember]:
    members: list[GroupMember] = _DECODER.decode(b"[" + zlib.decompress(block) + b"]")
    return members


@functools.lru_cache(maxsize=64)
def _cached(block: bytes) -> tuple[GroupMember, ...]:
    # Keyed by the block's content, so a replaced group can never read a stale entry.
    # Lookups come in bursts in a group (the account's own member for every message).
    return tuple(_decode(block))


_WIDTH: Final = array("Q").itemsize


class Members(Sequence[GroupMember]):
    """An immutable list of a group's members, stored compressed (see the module docstring).

    Not a list subclass: msgspec would encode a list subclass's (empty) storage instead of
    calling ``enc_hook``. Equal to any sequence of equal members, a plain list included.
    """

    __slots__ = ("_blocks", "_ids", "_len", "_uids")

    def __init__(self, blocks: tuple[bytes, ...], ids: bytes, uids: bytes) -> None:
        self._blocks = blocks
        self._ids = ids
        self._uids = uids
        self._len = len(ids) // _WIDTH

    @classmethod
    def pack(cls, members: Iterable[GroupMember]) -> Members:
        """Pack members (any iterable: a generator is read one block at a time).

        OverflowError when an id or uid does not fit the columns (the caller keeps a list).
        """
        blocks: list[bytes] = []
        ids: array[int] = array("Q")
        uids: array[int] = array("Q")
        it = iter(members)
        while chunk := list(islice(it, BLOCK)):
            # Without the list's brackets: raw() joins blocks as they decompress.
            blocks.append(zlib.compress(_ENCODER.encode(chunk)[1:-1], 1))
            for m in chunk:
                # The last number stands for "no uid", and lookups never ask for it.
                if _NO_UID in (m.id, m.uid):
                    raise OverflowError(_NO_UID)
                ids.append(m.id)
                uids.append(_NO_UID if m.uid is None else m.uid)
        return cls(tuple(blocks), ids.tobytes(), uids.tobytes())

    # --- Sequence -----------------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> GroupMember: ...
    @overload
    def __getitem__(self, index: slice) -> list[GroupMember]: ...
    def __getitem__(self, index: int | slice) -> GroupMember | list[GroupMember]:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("member index out of range")
        return _cached(self._blocks[index // BLOCK])[index % BLOCK]

    def __iter__(self) -> Iterator[GroupMember]:
        for block in self._blocks:
            yield from _decode(block)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, GroupMember):
            return False
        return any(m == value for m in self.matching(id=value.id))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Members):
            # The encoding is deterministic: equal members, equal blocks.
            return self._blocks == other._blocks
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == self._len and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._blocks)

    def __repr__(self) -> str:
        return f"<Members: {self._len} in {len(self._blocks)} blocks>"

    # --- lookups by the columns ---------------------------------------------------------
    def _positions(self, column: bytes, value: int) -> Iterator[int]:
        if not 0 <= value < _NO_UID:
            return
        needle = array("Q", (value,)).tobytes()
        at = column.find(needle)
        while at != -1:
            if at % _WIDTH == 0:
                yield at // _WIDTH
                at = column.find(needle, at + _WIDTH)
            else:
                at = column.find(needle, at + 1)

    def matching(self, *, id: int | None = None, uid: int | None = None) -> Iterator[GroupMember]:
        """Members with this id and/or uid (both given: both must match), in list order."""
        if id is not None:
            for i in self._positions(self._ids, id):
                m = self[i]
                if uid is None or m.uid == uid:
                    yield m
        elif uid is not None:
            for i in self._positions(self._uids, uid):
                yield self[i]

    def has_id(self, id: int) -> bool:
        """True when a member has this id (no decoding)."""
        return next(self._positions(self._ids, id), None) is not None

    # --- encoding -----------------------------------------------------------------------
    def raw(self) -> msgspec.Raw:
        """The bus JSON of the member list, as encoding the plain list gives it."""
        if not self._blocks:
            return msgspec.Raw(b"[]")
        # One copy of each block into one buffer: a full get_group_info is hundreds of MB.
        out = bytearray(b"[")
        for block in self._blocks:
            out += zlib.decompress(block)
            out += b","
        out[-1:] = b"]"
        return msgspec.Raw(out)

    def nbytes(self) -> int:
        """Bytes held (blocks, columns and their object headers), for measurements."""
        held = self._blocks, self._ids, self._uids
        return sum(map(sys.getsizeof, (*self._blocks, *held))) + sys.getsizeof(self)


def enc_hook(obj: Any) -> Any:
    """``enc_hook`` of every encoder that can see a group: a :class:`Members` as its JSON."""
    if isinstance(obj, Members):
        return obj.raw()
    msg = f"cannot encode {type(obj).__name__}"
    raise NotImplementedError(msg)


def matching(
    members: Sequence[GroupMember],
    *,
    id: int | None = None,
    uid: int | None = None,
) -> Iterator[GroupMember]:
    """Members with this id and/or uid (both given: both must match), in list order.

    A packed list answers from its columns; a plain (small) list is scanned.
    """
    if isinstance(members, Members):
        return members.matching(id=id, uid=uid)
    if id is None and uid is None:
        return iter(())
    return (m for m in members if id in (None, m.id) and uid in (None, m.uid))


def first(
    members: Sequence[GroupMember],
    *,
    id: int | None = None,
    uid: int | None = None,
) -> GroupMember | None:
    """The first member with this id and/or uid, or None."""
    return next(matching(members, id=id, uid=uid), None)


def has_id(members: Sequence[GroupMember], member_id: int) -> bool:
    """True when a member of the list has this id."""
    if isinstance(members, Members):
        return members.has_id(member_id)
    return any(m.id == member_id for m in members)


def compact(members: Iterable[GroupMember]) -> Sequence[GroupMember]:
    """Members as they should be kept: packed when there are ``PACK_AT`` or more."""
    if isinstance(members, Members):
        return members
    listed = members if isinstance(members, list) else list(members)
    if len(listed) < PACK_AT:
        return listed
    try:
        return Members.pack(listed)
    except OverflowError:
        # A number beyond 64 bits: keep the list (correct, only bigger).
        return listed


def compact_group(group: Group) -> Group:
    """The group as it should be kept in memory for a long time."""
    packed = compact(group.member)
    if packed is group.member:
        return group
    return msgspec.structs.replace(group, member=packed)


def with_members(group: Group, members: Iterable[GroupMember]) -> Group:
    """The group with these members, compacted (writers that rebuild a member list)."""
    return msgspec.structs.replace(group, member=compact(members))
