"""The idempotency record of commands, kept in SQLite so it survives a restart.

A command carrying a ``message_id`` is recorded as *started* before it runs and as *done*,
with its encoded reply, after. A redelivery of a done command gets the same reply again
without running; a redelivery of a command that was started but never finished (the bridge
died mid-way) is answered as failed rather than run a second time: QQ may have delivered it.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    message_id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    reply BLOB
)
"""


@dataclass(frozen=True, slots=True)
class Seen:
    """What the record knew about a message id when it was looked up."""

    state: Literal["new", "started", "done"]
    reply: bytes | None = None


class DoneStore:
    """message_id -> started/done(reply), pruned after ``ttl`` seconds."""

    def __init__(self, path: Path | None, *, ttl: float = 7 * 86400) -> None:
        self._db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a power cut may lose the last commits, a process crash loses nothing.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._ttl = ttl
        self._writes = 0
        self.prune()

    def begin(self, message_id: str) -> Seen:
        """Record the start of a command; say if it was seen before and how it ended."""
        cur = self._db.execute(
            "INSERT INTO commands (message_id, started) VALUES (?, ?) "
            "ON CONFLICT(message_id) DO NOTHING",
            (message_id, time.time()),
        )
        self._tick()
        if cur.rowcount == 1:
            return Seen("new")
        row = self._db.execute(
            "SELECT reply FROM commands WHERE message_id = ?", (message_id,)
        ).fetchone()
        if row is None or row[0] is None:
            return Seen("started")
        return Seen("done", bytes(row[0]))

    def finish(self, message_id: str, reply: bytes) -> None:
        """Record the reply of a command that ran to its end."""
        self._db.execute("UPDATE commands SET reply = ? WHERE message_id = ?", (reply, message_id))

    def forget(self, message_id: str) -> None:
        """Drop the record, so a requeued command may run when it comes back."""
        self._db.execute("DELETE FROM commands WHERE message_id = ?", (message_id,))

    def prune(self) -> None:
        """Delete records older than the ttl."""
        self._db.execute("DELETE FROM commands WHERE started < ?", (time.time() - self._ttl,))

    def _tick(self) -> None:
        self._writes += 1
        if self._writes % 1000 == 0:
            self.prune()

    def close(self) -> None:
        """Close the database."""
        self._db.close()
