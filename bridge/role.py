"""Role: whether this bridge is the account's active one, or a standby.

Exactly one bridge per account is active: only it runs the upstream, publishes events and
executes commands. :class:`AlwaysActive` is the role of the only bridge there can be (the
embedded bus); ``bridge.bus.lease.BrokerLease`` holds the role through the broker, so that
standbys take over when the active one dies or loses its broker.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Role(Protocol):
    """The account's active role, as seen by one bridge."""

    async def join(self) -> None:
        """Join the account's bridges (become a candidate)."""

    async def acquire(self) -> None:
        """Return once this bridge holds the role."""

    async def wait_lost(self) -> None:
        """Return once this bridge no longer holds the role (never, for AlwaysActive)."""

    async def wait_candidate(self) -> None:
        """Return once this bridge can be given the role again (its broker connection is up)."""

    def holds(self) -> bool:
        """Whether this bridge holds the role now."""
        ...

    async def standbys(self) -> int:
        """How many other bridges wait to take over (0 when unknown)."""
        ...

    async def release(self) -> None:
        """Give the role up (clean stop): a standby takes over."""


class AlwaysActive:
    """The role of a bridge that has no standby (the embedded bus): active from the start."""

    def __init__(self) -> None:
        self._never = asyncio.Event()

    async def join(self) -> None:
        """Nothing to join."""

    async def acquire(self) -> None:
        """Active at once."""

    async def wait_lost(self) -> None:
        await self._never.wait()

    async def wait_candidate(self) -> None:
        """Always a candidate."""

    def holds(self) -> bool:
        return True

    async def standbys(self) -> int:
        return 0

    async def release(self) -> None:
        """Nothing to give up."""
