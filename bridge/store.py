"""The idempotency record of commands, kept in SQLite so it survives a restart.

A command carrying a ``message_id`` is recorded when it is taken, marked *sent* right before the
bridge hands it to the QQ side, and *done*, with its encoded reply, after. A redelivery of a done
command gets the same reply again without running. A redelivery of a command that was marked sent
but never finished (the bridge died mid-way) is answered as failed rather than run a second time:
QQ may have delivered it. A command that was taken but never reached the QQ side (the bridge died
while it waited its turn) runs normally when it comes back.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands_v2 (
    message_id TEXT PRIMARY KEY,
    taken REAL NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    reply BLOB
)
"""


@dataclass(frozen=True, slots=True)
class Seen:
    """What the record knew about a message id when it was looked up."""

    state: Literal["new", "started", "done"]
    reply: bytes | None = None


class DoneStore:
    """message_id -> taken / sent / done(reply), pruned after ``ttl`` seconds."""

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
        """Record that a command was taken; say if it was seen before and how far it got."""
        cur = self._db.execute(
            "INSERT INTO commands_v2 (message_id, taken) VALUES (?, ?) "
            "ON CONFLICT(message_id) DO NOTHING",
            (message_id, time.time()),
        )
        self._tick()
        if cur.rowcount == 1:
            return Seen("new")
        row = self._db.execute(
            "SELECT sent, reply FROM commands_v2 WHERE message_id = ?", (message_id,)
        ).fetchone()
        if row is None or (row[1] is None and not row[0]):
            return Seen("new")  # taken before, but it never reached the QQ side
        if row[1] is None:
            return Seen("started")
        return Seen("done", bytes(row[1]))

    def mark_sent(self, message_id: str) -> None:
        """Record that the command is being handed to the QQ side now."""
        self._db.execute("UPDATE commands_v2 SET sent = 1 WHERE message_id = ?", (message_id,))

    def finish(self, message_id: str, reply: bytes) -> None:
        """Record the reply of a command that ran to its end."""
        self._db.execute(
            "UPDATE commands_v2 SET reply = ? WHERE message_id = ?", (reply, message_id)
        )

    def forget(self, message_id: str) -> None:
        """Drop the record, so a requeued command may run when it comes back."""
        self._db.execute("DELETE FROM commands_v2 WHERE message_id = ?", (message_id,))

    def prune(self) -> None:
        """Delete records older than the ttl."""
        self._db.execute("DELETE FROM commands_v2 WHERE taken < ?", (time.time() - self._ttl,))

    def _tick(self) -> None:
        self._writes += 1
        if self._writes % 1000 == 0:
            self.prune()

    def close(self) -> None:
        """Close the database."""
        self._db.close()
