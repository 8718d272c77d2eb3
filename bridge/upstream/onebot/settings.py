"""How the OneBot upstream reaches its implementation and how patient it is (plain data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class OneBotSettings:
    """How to reach the implementation."""

    mode: Literal["forward", "reverse"] = "forward"
    url: str = "ws://127.0.0.1:3001"
    token: str | None = None
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    path: str = "/onebot/v11/ws"
    action_timeout: float = 30.0
    lifecycle_wait: float = 3.0
    #: Missed heartbeats (of the implementation's own interval) before reconnecting.
    heartbeat_misses: float = 3.0
    #: Back-off between connections that failed before running: first wait, and the cap.
    reconnect_first: float = 0.5
    reconnect_max: float = 30.0
    #: Seconds a lookup an event waits for (a new member's card) before it is published
    #: with what is known: lookups hold up every later event, so they are kept short.
    lookup_timeout: float = 3.0
    #: The QQ number this bridge serves; 0: the first one that logs in (then pinned).
    self_id: int = 0
    #: Publish NapCat's input_status notices (a friend typing: one per keystroke).
    input_status: bool = False
    member_concurrency: int = 2
    risk_retcodes: tuple[int, ...] = ()
