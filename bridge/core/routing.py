"""Exchange, queue and routing-key names of the bus contract (README), in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.core.commands import QueueKind

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_name(value: str) -> bool:
    """Account and namespace names: letters, digits, ``_`` and ``-`` (no ``.``, ``*``, ``#``)."""
    return bool(_NAME.fullmatch(value))


@dataclass(frozen=True, slots=True)
class Names:
    """Every broker name for one namespace; ``Names("t-1a2b")`` isolates a test run."""

    prefix: str = "openqq"

    def __post_init__(self) -> None:
        if not valid_name(self.prefix):
            msg = f"namespace {self.prefix!r}: use letters, digits, '_' and '-' only"
            raise ValueError(msg)

    @property
    def events(self) -> str:
        """Topic exchange of every message and event."""
        return f"{self.prefix}.events"

    @property
    def commands(self) -> str:
        """Topic exchange of the commands to the bridges."""
        return f"{self.prefix}.commands"

    @property
    def dead(self) -> str:
        """Topic exchange of dead letters."""
        return f"{self.prefix}.dead"

    def command_queue(self, account: str, kind: QueueKind) -> str:
        """``openqq.<account>.send`` and its siblings."""
        return f"{self.prefix}.{account}.{kind}"

    def dead_queue(self, account: str) -> str:
        """Where an account's dead letters wait for a person to look at them."""
        return f"{self.prefix}.{account}.dead"

    def active_queue(self, account: str) -> str:
        """The lease of the account's active role (a single-active-consumer queue)."""
        return f"{self.prefix}.{account}.active"

    def record_stream(self, account: str) -> str:
        """The stream of the account's command record (message_id -> started / outcome)."""
        return f"{self.prefix}.{account}.record"


def command_key(kind: QueueKind, account: str) -> str:
    """Routing key of a command on the commands exchange: ``send.<account>``."""
    return f"{kind}.{account}"


def event_key(kind: str, account: str) -> str:
    """Routing key of an event: ``<post_type>.<type>.<account>``, always three words."""
    return f"{kind}.{account}"


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more words."""
    return _match(pattern.split("."), key.split("."))


def _match(pat: list[str], words: list[str]) -> bool:
    if not pat:
        return not words
    head, rest = pat[0], pat[1:]
    if head == "#":
        # '#' may swallow zero words, or one more word and stay in place.
        return _match(rest, words) or (bool(words) and _match(pat, words[1:]))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])
