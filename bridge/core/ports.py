"""The interface every upstream (the QQ side) implements, and what it hands back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bridge.core.events import Event, Segment
from bridge.core.model import Discuss, DiscussMember, Friend, Group, GroupMember, User

#: How an upstream hands an event to the bridge; it may wait while the buffer is full.
Emit = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the account knows at login: the bridge's contact book starts from it."""

    user: User
    friends: Sequence[Friend]
    groups: Sequence[Group]
    discusses: Sequence[Discuss]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What the QQ side said about one sent message (spec §4 codes)."""

    code: int
    info: str
    msg_id: int
    time: int
    content: str
    ttl: int = 2

    @property
    def ok(self) -> bool:
        """True when QQ accepted the message."""
        return self.code == 0


class Upstream(Protocol):
    """A QQ account: it logs in, emits events, and carries out sends, kicks and mutes.

    A send's ``segments`` (None: none given) is the message as OneBot segments, validated by
    the command; ``content`` is always its plain-text rendering. An upstream that cannot send
    segments sends ``content``.
    """

    kind: str
    #: Default (global, per conversation) send intervals in seconds for this kind of account.
    default_pacing: tuple[float, float]

    async def run(self, emit: Emit) -> None:
        """Log in (emitting the state changes), then serve until cancelled or stopped."""

    def snapshot(self) -> Snapshot:
        """The account's contacts, valid once the state is ``running``."""
        ...

    async def send_friend(
        self, friend: Friend, content: str, segments: list[Segment] | None = None
    ) -> SendOutcome:
        """Send to a friend."""
        ...

    async def send_group(
        self, group: Group, content: str, segments: list[Segment] | None = None
    ) -> SendOutcome:
        """Send to a group."""
        ...

    async def send_discuss(
        self, discuss: Discuss, content: str, segments: list[Segment] | None = None
    ) -> SendOutcome:
        """Send to a discuss group."""
        ...

    async def send_sess(
        self,
        member: GroupMember | DiscussMember,
        via: Group | Discuss,
        content: str,
        segments: list[Segment] | None = None,
    ) -> SendOutcome:
        """Temporary chat with a member of a group or discuss group."""
        ...

    async def ensure_members(self, group: Group) -> None:
        """Load the group's member list if it is not loaded yet (emitting update_group)."""

    async def kick(self, group: Group, members: Sequence[GroupMember]) -> None:
        """Remove members from a group; ActionFailed when QQ refuses."""

    async def shutup(self, group: Group, members: Sequence[GroupMember], seconds: int) -> None:
        """Mute members; ActionFailed when QQ refuses."""

    async def relogin(self) -> None:
        """Log in again (contacts reloaded, state changes emitted)."""

    async def stop(self) -> None:
        """Log out: emit state ``stop`` and the ``stop`` event, then return."""
