"""Supervisor: the local bridge processes of a controller, one ``openqq-bridge bridge`` each.

A bridge gets the controller's settings (the template) plus its per-account settings as
``OPENQQ_*`` variables; its simulated account listens on a free port unless it sets
``sim_listen``. A bridge that crashes (exits non-zero or by a signal) is started again after
a jittered back-off that doubles from 1 s up to 60 s (reset once it has run for a minute); one
that exits 0 was stopped on purpose (``stop_client`` on its own API, SIGTERM from a person) and
is forgotten, like a ``stop_client`` of the controller.
``stop`` sends SIGTERM, waits up to ``stop_grace`` seconds, then SIGKILLs.

Bridges run in their own session and outlive the controller: a restarted controller reads
the data file and adopts the bridges still running (same pid, holding their account's pid
file), and starts again those that died in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO

from bridge.config import Settings, env_name, load_settings, per_account_error, settings_env
from bridge.controller.datafile import DataFile, Started
from bridge.errors import ConfigError

log = logging.getLogger(__name__)

#: Back-off after a crash: first pause, cap, and how long a run must last to reset it.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
HEALTHY_AFTER = 60.0
#: How often the processes are checked.
CHECK_INTERVAL = 0.5


@dataclass(slots=True)
class LocalBridge:
    """One supervised bridge process."""

    name: str
    settings: Settings
    overrides: dict[str, str]
    pid: int
    start_time: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = field(default_factory=time.monotonic)
    failures: int = 0
    restart_at: float | None = None
    stopping: bool = False


class Supervisor:
    """Starts, watches, restarts and stops the controller's bridge processes."""

    def __init__(
        self,
        template: Settings,
        datafile: DataFile,
        stopped: Callable[[str], Awaitable[None]],
        *,
        stop_grace: float = 30.0,
    ) -> None:
        self.template = template
        self.datafile = datafile
        #: Called with the name of a bridge that stopped by itself (exit 0), once forgotten.
        self._stopped = stopped
        self.stop_grace = stop_grace
        self.bridges: dict[str, LocalBridge] = {}
        self._task: asyncio.Task[None] | None = None

    # --- settings -------------------------------------------------------------------------
    def account_settings(self, name: str, overrides: dict[str, str]) -> Settings:
        """The settings of account ``name``: the template plus its own (ConfigError if bad)."""
        for key in overrides:
            problem = per_account_error(key)
            if problem:
                raise ConfigError(problem)
        env = settings_env(self.template)
        env[env_name("account")] = name
        # The template's sim_listen is one port; each local simulated account takes a free one.
        host = self.template.sim_listen.rpartition(":")[0]
        env[env_name("sim_listen")] = f"{host}:0"
        env.update({env_name(k): v for k, v in overrides.items()})
        return load_settings(None, env)

    def _env(self, settings: Settings) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENQQ_")}
        env.pop("AMQP_URL", None)
        env.update(settings_env(settings))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def log_path(self, name: str) -> str:
        """Where a bridge's stdout and stderr go."""
        return str(self.template.data_dir / f"openqq_bridge_{name}.log")

    def _spawn(self, settings: Settings) -> subprocess.Popen[bytes]:
        out: IO[bytes]
        with open(self.log_path(settings.account), "ab") as out:
            # Own session: the bridge outlives the controller and its terminal's signals.
            return subprocess.Popen(
                [sys.executable, "-m", "bridge", "bridge"],
                env=self._env(settings),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    # --- lifecycle ------------------------------------------------------------------------
    def start(self, name: str, overrides: dict[str, str]) -> LocalBridge:
        """Start a bridge for ``name`` (ConfigError for bad settings, OSError if it fails)."""
        settings = self.account_settings(name, overrides)
        proc = self._spawn(settings)
        b = LocalBridge(name, settings, dict(overrides), proc.pid, int(time.time()), proc)
        self.bridges[name] = b
        self._remember(b)
        log.info("client %s: bridge started (pid %d, log %s)", name, b.pid, self.log_path(name))
        return b

    def _remember(self, b: LocalBridge) -> None:
        self.datafile.data.clients[b.name] = Started(
            pid=b.pid, start_time=b.start_time, overrides=b.overrides
        )
        self.datafile.save()

    def resume(self) -> list[str]:
        """Adopt the bridges of the data file still running; start the others again."""
        for name, entry in sorted(self.datafile.data.clients.items()):
            try:
                settings = self.account_settings(name, entry.overrides)
            except ConfigError as exc:
                log.error("client %s of the data file not resumed: %s", name, exc)
                del self.datafile.data.clients[name]
                continue
            b = LocalBridge(name, settings, entry.overrides, entry.pid, entry.start_time)
            self.bridges[name] = b
            if self._adoptable(b):
                log.info("client %s: bridge pid %d still running, adopted", name, b.pid)
            else:
                log.info("client %s: bridge pid %d gone, starting it again", name, b.pid)
                self._restart(b)
        self.datafile.save()
        return sorted(self.bridges)

    def _pid_file_pid(self, b: LocalBridge) -> int | None:
        path = b.settings.data_dir / f"mojo_webqq_pid_{b.name}.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _adoptable(self, b: LocalBridge) -> bool:
        # The pid alone could be reused by another process; the account's pid file says
        # which process holds the account.
        return _alive(b.pid) and self._pid_file_pid(b) == b.pid

    def alive(self, b: LocalBridge) -> bool:
        """Whether the bridge process runs."""
        if b.proc is not None:
            return b.proc.poll() is None
        return self._adoptable(b)

    def _restart(self, b: LocalBridge) -> None:
        proc = self._spawn(b.settings)
        b.proc, b.pid, b.start_time = proc, proc.pid, int(time.time())
        b.started_at, b.restart_at = time.monotonic(), None
        self._remember(b)

    def run(self) -> None:
        """Start watching the processes."""
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            now = time.monotonic()
            for b in list(self.bridges.values()):
                if b.stopping:
                    continue
                if b.restart_at is None:
                    if self.alive(b):
                        continue
                    if b.proc is not None and b.proc.returncode == 0:
                        log.info("client %s: bridge pid %d stopped by itself", b.name, b.pid)
                        self._forget(b.name)
                        await self._stopped(b.name)
                        continue
                    if now - b.started_at >= HEALTHY_AFTER:
                        b.failures = 0
                    pause = restart_pause(b.failures)
                    b.failures += 1
                    b.restart_at = now + pause
                    code = b.proc.returncode if b.proc is not None else None
                    log.warning(
                        "client %s: bridge pid %d exited (%s); restarting in %.1fs",
                        b.name,
                        b.pid,
                        "unknown status" if code is None else f"status {code}",
                        pause,
                    )
                elif now >= b.restart_at:
                    try:
                        self._restart(b)
                        log.info("client %s: bridge restarted (pid %d)", b.name, b.pid)
                    except OSError as exc:
                        b.restart_at = None
                        log.error("client %s: bridge not restarted: %s", b.name, exc)

    async def stop(self, name: str) -> LocalBridge:
        """Stop the bridge gracefully (SIGTERM, bounded wait, SIGKILL) and forget it."""
        b = self.bridges[name]
        b.stopping = True
        if b.restart_at is None and self.alive(b):
            _signal(b.pid, signal.SIGTERM)
            if not await self._exited(b, self.stop_grace):
                log.warning(
                    "client %s: bridge pid %d still running %gs after SIGTERM; SIGKILL",
                    name,
                    b.pid,
                    self.stop_grace,
                )
                _signal(b.pid, signal.SIGKILL)
                await self._exited(b, 10.0)
        self._forget(name)
        log.info("client %s: bridge stopped", name)
        return b

    def _forget(self, name: str) -> None:
        del self.bridges[name]
        self.datafile.data.clients.pop(name, None)
        self.datafile.save()

    async def _exited(self, b: LocalBridge, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if b.proc is not None:
                if b.proc.poll() is not None:
                    return True
            elif not _alive(b.pid):
                return True
            await asyncio.sleep(0.05)
        return False

    async def close(self) -> None:
        """Stop watching; the bridges keep running (the next controller adopts them)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.datafile.save()


def restart_pause(failures: int) -> float:
    """Seconds before the next start after ``failures`` crashes in a row: 1, 2, 4 ... 60 s.

    Each pause is taken between half and all of it, so bridges that crashed together spread out.
    """
    full: float = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** min(failures, 16))
    return full * random.uniform(0.5, 1.0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers signal 0; /proc tells it apart (Linux).
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", "rb") as fh:
        return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
