"""Log formats: ``log_format = json`` writes one JSON object a line.

Each object has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``account``
(the record's ``account`` extra, else the process's account), ``message``, every other
``extra={...}`` field the log call gave, and ``exception`` with the traceback when there is one.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import msgspec

#: Attributes every LogRecord has; anything else came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def __init__(self, account: str | None = None) -> None:
        super().__init__()
        self.account = account

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        when = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        out: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "account": getattr(record, "account", self.account),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return msgspec.json.encode(out, enc_hook=str).decode()
