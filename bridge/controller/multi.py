"""AccountApis: one single-account Openqq API per account the controller knows.

Each is an :class:`~bridge.adapters.openqq.adapter.OpenqqAdapter` (contact replica,
check_event buffer, post_api forwarder, RPC client) on the controller's connection, created
when the account appears (before its bridge starts, so check_event keeps everything from the
account's start) and listening on ``backend_start_port + n``. The controller hands requests
with ``client=NAME`` to the same handlers, so both doors answer alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from bridge.adapters.openqq.adapter import OpenqqAdapter
from bridge.bus.base import Bus
from bridge.config import Settings, parse_hostport
from bridge.core.routing import Names
from bridge.errors import ConfigError
from bridge.metrics import OFF, Metrics
from bridge.status import StatusSource

log = logging.getLogger(__name__)


def with_client(url: str | None, client: str) -> str | None:
    """``url`` with ``client=NAME`` merged into its query, as Mojo::URL ``merge`` does.

    An existing ``client`` parameter is replaced; every other byte of the URL is kept.
    """
    if url is None:
        return None
    rest, hash_, fragment = url.partition("#")
    base, _, query = rest.partition("?")
    pairs = [p for p in query.split("&") if p and p.split("=", 1)[0] != "client"]
    pairs.append(f"client={client}")
    return f"{base}?{'&'.join(pairs)}{hash_}{fragment}"


class AccountApis:
    """The per-account APIs, by account name."""

    def __init__(
        self,
        bus: Bus,
        names: Names,
        settings_of: Callable[[str], Settings],
        port_of: Callable[[str], int],
        *,
        metrics: Metrics = OFF,
        state_of: Callable[[str], str | None] = lambda _name: None,
    ) -> None:
        self._bus = bus
        self._metrics = metrics
        self._state_of = state_of
        self._names = names
        self._settings_of = settings_of
        self._port_of = port_of
        self.apis: dict[str, OpenqqAdapter] = {}

    def port(self, name: str) -> int | None:
        """Where the account's single-account API listens (None: only through the controller)."""
        api = self.apis.get(name)
        return api.bound[1] if api is not None and api.bound is not None else None

    async def add(self, name: str) -> None:
        """Create and start the account's API."""
        s = self._settings_of(name)
        host = parse_hostport(s.controller_listen, "controller_listen")[0]
        port = s.backend_start_port + self._port_of(name)
        opts = msgspec.structs.replace(
            s,
            account=name,
            listen=f"{host}:{port}" if port <= 65535 else f"{host}:0",
            post_api=with_client(s.post_api, name),
            poll_api=with_client(s.poll_api, name),
        )
        adapter = OpenqqAdapter(
            self._bus,
            self._names,
            opts,
            metrics=self._metrics,
            state=lambda: self._state_of(name),
        )
        try:
            await adapter.start()
        except ConfigError as exc:
            # Subscriptions are up by then: the account is still served through the controller.
            log.warning("client %s: no API port of its own: %s", name, exc)
        except BaseException:
            # Nothing half-made stays behind (queues, consumers, an RPC client).
            await adapter.stop()
            raise
        self.apis[name] = adapter

    async def remove(self, name: str) -> None:
        """Stop and drop the account's API."""
        adapter = self.apis.pop(name, None)
        if adapter is not None:
            await adapter.stop()
            self._metrics.forget_account(name)

    def sources(self) -> list[StatusSource]:
        """The status page's entries: every account, by name."""
        return [self.apis[n].accounts[n] for n in sorted(self.apis)]

    async def close(self) -> None:
        """Stop every API."""
        for name in list(self.apis):
            await self.remove(name)
