"""The command record: what became of each command ``message_id`` (the idempotency record).

A command is recorded *started* right before the bridge hands it to the QQ side, and *done*,
with its encoded reply, after. A redelivery of a done command gets the same reply again without
running. A redelivery of a started command that never finished (the bridge died mid-way) is
answered "result unknown" rather than run a second time: QQ may have delivered it. A command
that never reached the QQ side (the bridge died while it waited its turn) has no entry and runs
normally when it comes back.

:class:`CommandRecord` is the interface; :class:`SqliteRecord` keeps it in a local SQLite file
(the embedded bus: one bridge, one machine). ``bridge.bus.record.StreamRecord`` keeps it in a
RabbitMQ stream, shared by every bridge of the account and replicated like the queues.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands_v3 (
    message_id TEXT PRIMARY KEY,
    taken REAL NOT NULL,
    reply BLOB
)
"""


@dataclass(frozen=True, slots=True)
class Seen:
    """What the record knew about a message id when it was looked up."""

    state: Literal["new", "started", "done"]
    reply: bytes | None = None


class CommandRecord(Protocol):
    """message_id -> started / done(reply); each write is durable when its call returns."""

    async def load(self) -> None:
        """Catch up with every entry written so far (before commands are consumed)."""

    def lookup(self, message_id: str) -> Seen:
        """How far the command got: new, started (handed to QQ, no outcome) or done."""
        ...

    async def started(self, message_id: str) -> None:
        """Record, durably, that the command is handed to the QQ side now."""

    async def finish(self, message_id: str, reply: bytes) -> None:
        """Record, durably, the reply of a command that came to its end."""

    async def close(self) -> None:
        """Release what the record holds."""


class SqliteRecord:
    """The :class:`CommandRecord` in SQLite, pruned after ``ttl`` seconds."""

    def __init__(self, path: Path | None, *, ttl: float = 7 * 86400) -> None:
        self._db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a power cut may lose the last commits, a process crash loses nothing.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._ttl = ttl
        self._writes = 0
        self.prune()

    async def load(self) -> None:
        """Nothing to catch up with: this process is the only writer."""

    def lookup(self, message_id: str) -> Seen:
        row = self._db.execute(
            "SELECT reply FROM commands_v3 WHERE message_id = ?", (message_id,)
        ).fetchone()
        if row is None:
            return Seen("new")
        if row[0] is None:
            return Seen("started")
        return Seen("done", bytes(row[0]))

    async def started(self, message_id: str) -> None:
        self.mark_started(message_id)

    def mark_started(self, message_id: str) -> None:
        """The synchronous :meth:`started` (tests set up a crashed state with it)."""
        self._db.execute(
            "INSERT INTO commands_v3 (message_id, taken) VALUES (?, ?) "
            "ON CONFLICT(message_id) DO NOTHING",
            (message_id, time.time()),
        )
        self._tick()

    async def finish(self, message_id: str, reply: bytes) -> None:
        self._db.execute(
            "INSERT INTO commands_v3 (message_id, taken, reply) VALUES (?, ?, ?) "
            "ON CONFLICT(message_id) DO UPDATE SET reply = excluded.reply",
            (message_id, time.time(), reply),
        )
        self._tick()

    def prune(self) -> None:
        """Delete records older than the ttl."""
        self._db.execute("DELETE FROM commands_v3 WHERE taken < ?", (time.time() - self._ttl,))

    def _tick(self) -> None:
        self._writes += 1
        if self._writes % 1000 == 0:
            self.prune()

    async def close(self) -> None:
        self._db.close()
