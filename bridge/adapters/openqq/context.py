"""What the ``/openqq/*`` handlers need from the API object, as a Protocol.

The handlers (routes.py) depend on this module only; app.py implements it and imports the
handlers, so imports go one way: app → routes → context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bridge.adapters.openqq.check_event import EventBuffer
    from bridge.adapters.openqq.replica import ContactReplica
    from bridge.config import Settings
    from bridge.core import commands as c


class ApiContext(Protocol):
    """The API object as the handlers see it: contacts, events, options, calls to the bridge."""

    @property
    def replica(self) -> ContactReplica:
        """The contact replica (reads and lookups once it is ready)."""

    @property
    def buffer(self) -> EventBuffer:
        """The check_event buffer."""

    @property
    def opts(self) -> Settings:
        """The settings (access token, timeouts, shutup unit, ...)."""

    async def call(self, cmd: c.Command) -> bytes:
        """The legacy bytes of the bridge's reply, or an error reply of the right shape."""

    async def cast(self, cmd: c.Command) -> bytes | None:
        """Send without waiting; an error reply when the bridge is not there."""

    async def group_exists(self, crit: dict[str, Any]) -> bool:
        """Whether the group exists (replica, else the bridge), to order error answers."""
