"""Message events built from the contacts: one builder per kind, received and sent.

The sender, receiver, group and discuss fields of the eight message events of events.py are
laid out here and nowhere else, for both upstreams and the bridge. Callers say who and where
with the contact objects of model.py (through ``Party``: the name a message shows, which
differs by place, e.g. the account's card in a group) and what was said (``Said``) or how a
send went (``Report``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import msgspec

from bridge.core import events as ev
from bridge.core.contacts import member_name
from bridge.core.members import first
from bridge.core.model import (
    Discuss,
    DiscussMember,
    Friend,
    Group,
    GroupMember,
    User,
    display_name,
    member_display,
)

Segments = list[ev.Segment] | msgspec.UnsetType


class Party(NamedTuple):
    """One end of a message: the name it shows, the id and the QQ number."""

    name: str
    id: int
    uid: int | None


def of_user(user: User, name: str | None = None) -> Party:
    """The account, under ``name`` where it goes by another (its name in a group)."""
    return Party(user.name if name is None else name, user.id, user.uid)


def of_friend(friend: Friend) -> Party:
    """A friend, by display name (markname, else nick)."""
    return Party(display_name(friend), friend.id, friend.uid)


def of_member(member: GroupMember, friends: Mapping[int, Friend]) -> Party:
    """A group member, by the name messages give it (see contacts.member_name)."""
    return Party(member_name(member, friends), member.id, member.uid)


def of_discuss_member(member: DiscussMember) -> Party:
    """A discuss member (its id is a string in the model, a number in messages)."""
    return Party(member.name, int(member.id), member.uid)


def own_name_in(group: Group, user: User) -> str:
    """The account's name in a group as a message's receiver: card, else nick, else its own."""
    me = first(group.member, id=user.id)
    return member_display(me) if me is not None else user.name


class Said(NamedTuple):
    """What a received message said, and when."""

    id: int
    time: int
    content: str
    segments: Segments = msgspec.UNSET


class Report(NamedTuple):
    """How a send went, as a ``send_message`` event reports it."""

    id: int
    time: int
    content: str
    code: int
    info: str
    msg: str
    from_: Literal["api", "code"] = "api"
    source: Literal["local", "outer"] = "local"
    ttl: int = 2
    segments: Segments = msgspec.UNSET


def _sender(p: Party) -> dict[str, Any]:
    return {"sender": p.name, "sender_id": p.id, "sender_uid": p.uid}


def _receiver(p: Party) -> dict[str, Any]:
    return {"receiver": p.name, "receiver_id": p.id, "receiver_uid": p.uid}


def _place(where: Group | Discuss | None) -> dict[str, Any]:
    if isinstance(where, Group):
        return {"group": display_name(where), "group_id": where.id, "group_uid": where.uid}
    if isinstance(where, Discuss):
        return {"discuss": where.name, "discuss_id": where.id}
    return {}


def _via(where: Group | Discuss | None) -> Literal["group", "discuss"]:
    return "discuss" if isinstance(where, Discuss) else "group"


# --- received -----------------------------------------------------------------------------
def received_friend(said: Said, sender: Party, receiver: Party) -> ev.ReceivedFriendMessage:
    """A friend wrote to the account."""
    return ev.ReceivedFriendMessage(**said._asdict(), **_sender(sender), **_receiver(receiver))


def received_group(
    said: Said, sender: Party, receiver: Party, group: Group
) -> ev.ReceivedGroupMessage:
    """Someone wrote in a group (``receiver``: the account under its name there)."""
    return ev.ReceivedGroupMessage(
        **said._asdict(), **_sender(sender), **_receiver(receiver), **_place(group)
    )


def received_discuss(
    said: Said, sender: Party, receiver: Party, discuss: Discuss
) -> ev.ReceivedDiscussMessage:
    """Someone wrote in a discuss group."""
    return ev.ReceivedDiscussMessage(
        **said._asdict(), **_sender(sender), **_receiver(receiver), **_place(discuss)
    )


def received_sess(
    said: Said, sender: Party, receiver: Party, via: Group | Discuss | None
) -> ev.ReceivedSessMessage:
    """A temporary chat from someone met in ``via`` (None: a group not known, so not named)."""
    return ev.ReceivedSessMessage(
        **said._asdict(),
        **_sender(sender),
        **_receiver(receiver),
        via=_via(via),
        **_place(via),
    )


# --- sent ---------------------------------------------------------------------------------
def sent_friend(report: Report, sender: Party, receiver: Party) -> ev.SentFriendMessage:
    """The account sent a message to a friend."""
    return ev.SentFriendMessage(**report._asdict(), **_sender(sender), **_receiver(receiver))


def sent_group(report: Report, sender: Party, group: Group) -> ev.SentGroupMessage:
    """The account (``sender``: under its name in the group) sent a message to a group."""
    return ev.SentGroupMessage(**report._asdict(), **_sender(sender), **_place(group))


def sent_discuss(report: Report, sender: Party, discuss: Discuss) -> ev.SentDiscussMessage:
    """The account sent a message to a discuss group."""
    return ev.SentDiscussMessage(**report._asdict(), **_sender(sender), **_place(discuss))


def sent_sess(
    report: Report, sender: Party, receiver: Party, via: Group | Discuss
) -> ev.SentSessMessage:
    """The account sent a temporary-chat message to someone met in ``via``."""
    return ev.SentSessMessage(
        **report._asdict(), **_sender(sender), **_receiver(receiver), via=_via(via), **_place(via)
    )
