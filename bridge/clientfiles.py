"""The client data files of reference/openqq-api.md, kept in the ``tmpdir`` setting.

- ``mojo_webqq_state_<account>.json``: rewritten (atomically) on every state change;
- ``mojo_webqq_qrcode_<account>.png``: the login QR code while there is one to scan;
- ``mojo_webqq_pid_<account>.pid``: the bridge's pid, locked with ``flock`` so a second
  bridge for the same account on the same host stops with a clear message (a stale file
  left by a crash does not block: the lock died with its process).
The original names are kept so tools that read them keep working.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from bridge import __version__
from bridge.core import events as ev
from bridge.core.codec import encode
from bridge.errors import AlreadyRunning, ConfigError

log = logging.getLogger(__name__)


def lock_pid_file(path: Path, held: Callable[[str], str]) -> IO[str]:
    """Lock ``path`` (flock) and write our pid into it; keep the file open to hold the lock.

    AlreadyRunning with the message ``held(other pid)`` when a live process holds it; a file
    left by a dead one does not block (its lock died with it).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("a+")
    except OSError as exc:
        msg = f"setting 'tmpdir': cannot use {path.parent}: {exc.strerror or exc}"
        raise ConfigError(msg) from exc
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        fh.seek(0)
        other = fh.read().strip() or "?"
        fh.close()
        raise AlreadyRunning(held(other)) from exc
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


class ClientFiles:
    """State JSON, QR code PNG and pid file of one account."""

    def __init__(self, tmpdir: Path, account: str, extra: dict[str, Any] | None = None):
        self.dir = tmpdir
        self.account = account
        self.state_path = tmpdir / f"mojo_webqq_state_{account}.json"
        self.qrcode_path = tmpdir / f"mojo_webqq_qrcode_{account}.png"
        self.pid_path = tmpdir / f"mojo_webqq_pid_{account}.pid"
        self.start_time = int(time.time())
        self._extra = extra or {}
        self._pid_fh: IO[str] | None = None

    def lock(self) -> None:
        """Take the pid file; AlreadyRunning if another live bridge holds it."""
        self._pid_fh = lock_pid_file(
            self.pid_path,
            lambda other: (
                f"another bridge (pid {other}) is already running for account"
                f" {self.account!r} (pid file {self.pid_path})"
            ),
        )

    def release(self) -> None:
        """Remove the pid and QR code files and drop the lock (at exit)."""
        for path in (self.qrcode_path, self.pid_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self._pid_fh is not None:
            self._pid_fh.close()
            self._pid_fh = None

    def on_event(self, event: ev.Event) -> None:
        """Keep the files current with one upstream event."""
        match event:
            case ev.StateChange(params=(old, new)):
                self.write_state(new, old)
                if new == "running":
                    with contextlib.suppress(FileNotFoundError):
                        self.qrcode_path.unlink()
            case ev.InputQrcode(params=[_, data, *_]):
                try:
                    png = base64.b64decode(data)
                except (binascii.Error, ValueError):
                    log.warning("input_qrcode carried no valid base64 PNG")
                    return
                if self._write(self.qrcode_path, png):
                    log.info(
                        "account %s: login QR code written to %s; scan it with the QQ app",
                        self.account,
                        self.qrcode_path,
                        extra={"account": self.account, "qrcode_path": str(self.qrcode_path)},
                    )
            case _:
                pass

    def write_state(self, state: str, previous: str | None) -> None:
        """Rewrite the state JSON (spec §9 fields that apply to the bridge)."""
        data = {
            "account": self.account,
            "version": __version__,
            "start_time": self.start_time,
            "mode": "online",
            "http_debug": 0,
            "log_encoding": None,
            "log_path": "",
            "tmpdir": str(self.dir),
            "qrcode_path": str(self.qrcode_path),
            "pid_path": str(self.pid_path),
            "state_path": str(self.state_path),
            "state": state,
            "previous_state": previous,
            "pid": os.getpid(),
            "os": sys.platform,
            "plugin": [],
            **self._extra,
        }
        self._write(self.state_path, encode(data))

    def _write(self, path: Path, data: bytes) -> bool:
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc.strerror or exc)
            return False
        return True
