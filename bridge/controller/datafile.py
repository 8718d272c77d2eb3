"""The controller's data file (Mojo::Webqq's ``mojo_webqq_controller_backend.dat``).

``<tmpdir>/openqq_controller_<namespace>.json`` holds the clients this controller started
(pid, per-account settings, start time) and the port number ``n`` of every account it has
served (``backend_start_port + n``), so a restarted controller finds its bridges again and
every account keeps its port. Written atomically after every change.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import IO

import msgspec

from bridge.clientfiles import lock_pid_file

log = logging.getLogger(__name__)


class Started(msgspec.Struct, kw_only=True):
    """A client this controller started."""

    pid: int
    start_time: int
    overrides: dict[str, str] = msgspec.field(default_factory=dict)


class Backend(msgspec.Struct, kw_only=True):
    """The whole file."""

    clients: dict[str, Started] = msgspec.field(default_factory=dict)
    ports: dict[str, int] = msgspec.field(default_factory=dict)


class DataFile:
    """Load, change and save the controller's data; a lock keeps one controller per file."""

    def __init__(self, tmpdir: Path, namespace: str) -> None:
        self.path = tmpdir / f"openqq_controller_{namespace}.json"
        self.lock_path = tmpdir / f"openqq_controller_{namespace}.pid"
        self.data = Backend()
        self._lock: IO[str] | None = None

    def lock(self) -> None:
        """Take the controller's pid file; AlreadyRunning if another controller holds it."""
        self._lock = lock_pid_file(
            self.lock_path,
            lambda other: f"another controller (pid {other}) already uses {self.path}",
        )

    @property
    def locked(self) -> bool:
        """Whether this controller holds the files."""
        return self._lock is not None

    def release(self) -> None:
        """Drop the lock (the data file stays for the next controller)."""
        if self._lock is not None:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
            self._lock.close()
            self._lock = None

    def load(self) -> None:
        """Read the file; a missing file is empty, an unreadable one is logged and ignored."""
        try:
            self.data = msgspec.json.decode(self.path.read_bytes(), type=Backend)
        except FileNotFoundError:
            self.data = Backend()
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("controller data file %s unreadable, starting empty: %s", self.path, exc)
            self.data = Backend()

    def save(self) -> None:
        """Write the file atomically."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_bytes(msgspec.json.encode(self.data, order="sorted"))
            tmp.replace(self.path)
        except OSError as exc:
            log.error("cannot write controller data file %s: %s", self.path, exc.strerror or exc)

    def port_number(self, account: str) -> int:
        """The account's ``n`` (kept for good once given): the smallest one not taken."""
        n = self.data.ports.get(account)
        if n is None:
            taken = set(self.data.ports.values())
            n = next(i for i in range(len(taken) + 1) if i not in taken)
            self.data.ports[account] = n
            self.save()
        return n
