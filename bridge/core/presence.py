"""The presence of a bridge on the bus: who runs which account, where, in which state.

The active bridge of an account publishes a :class:`Presence` on ``<ns>.events`` with
routing key ``presence.bridge.<account>`` when it starts, on every state change and every
``interval`` seconds, and a last one with state ``stop`` when it stops (standbys are
silent). The first word ``presence`` keeps it out of every binding of messages and Openqq
events (``receive_message.#``, ``event.*.*``), so existing consumers never see it; a
controller binds ``presence.bridge.*`` to learn the accounts of a namespace, wherever their
bridges run.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta

#: First two words of the routing key (and the AMQP ``type``) of a presence message.
PRESENCE_KIND: Final = "presence.bridge"
#: Seconds between two presence messages of a running bridge.
PRESENCE_INTERVAL: Final = 10.0
#: A bridge unheard for this many intervals is taken as gone.
PRESENCE_MISSES: Final = 3


class Presence(msgspec.Struct, frozen=True, kw_only=True):
    """A bridge's sign of life: its account, state and where it runs."""

    account: Annotated[str, Meta(description="account name (the last word of the key)")]
    state: Annotated[
        str,
        Meta(description="init, loading, scaning, confirming, updating, running or stop"),
    ]
    host: Annotated[str, Meta(description="host name of the machine the bridge runs on")]
    pid: Annotated[int, Meta(description="process id of the bridge on that host")]
    start_time: Annotated[int, Meta(description="when the bridge started (Unix seconds)")]
    version: Annotated[str, Meta(description="openqq-bridge version")]
    upstream: Annotated[str, Meta(description="sim or onebot")]
    interval: Annotated[
        float, Meta(gt=0, description="seconds until the next presence of this bridge")
    ]
    sim_listen: Annotated[
        str | None,
        Meta(description="host:port of the simulated account's control endpoint (sim only)"),
    ] = None
    tmpdir: Annotated[
        str | None, Meta(description="directory of the bridge's client data files")
    ] = None
