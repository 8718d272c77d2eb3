"""Process helpers shared by the benchmark parts: start bridge/adapter processes, wait, measure."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process, in MB (from /proc); ``VmHWM``: its peak so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int | None:
    """The RabbitMQ server process (beam.smp), if it runs on this machine."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"beam.smp" in cmd and b"rabbit" in cmd:
                return int(entry.name)
    return None


class CpuMeter:
    """CPU seconds used by some processes between start() and stop()."""

    def __init__(self, **pids: int | None) -> None:
        self.pids = {k: v for k, v in pids.items() if v}
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self.before = {k: cpu_seconds(p) for k, p in self.pids.items()}

    def stop(self) -> None:
        self.used = {k: cpu_seconds(p) - self.before[k] for k, p in self.pids.items()}

    def total_per_request(self, requests: float, *names: str) -> float:
        """CPU microseconds per request of the named processes together (default: all)."""
        if requests <= 0:
            return 0.0
        return sum(v for k, v in self.used.items() if not names or k in names) / requests * 1e6

    def per_request(self, requests: float) -> str:
        """CPU microseconds per request, by process."""
        if requests <= 0:
            return ""
        parts = [f"{k} {v / requests * 1e6:.0f}" for k, v in self.used.items()]
        return "CPU us/request: " + ", ".join(parts)


@dataclass
class Proc:
    """A running openqq-bridge process and its ports."""

    popen: subprocess.Popen[bytes]
    tmpdir: Path
    env: dict[str, str]
    started: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def url(self, path: str) -> str:
        return f"http://{self.env['OPENQQ_LISTEN']}{path}"

    def sim(self, path: str) -> str:
        return f"http://{self.env['OPENQQ_SIM_LISTEN']}{path}"

    def state(self) -> str | None:
        try:
            data = msgspec.json.decode((self.tmpdir / "mojo_webqq_state_default.json").read_bytes())
        except (FileNotFoundError, msgspec.DecodeError):
            return None
        return str(data.get("state"))


#: Settings every started process gets (``--metrics off`` puts ``metrics = false`` here).
DEFAULTS: dict[str, str] = {}


def start(role: str, namespace: str, **settings: str) -> Proc:
    """Start ``openqq-bridge <role>`` with quiet output and its own ports and tmpdir."""
    tmpdir = Path(tempfile.mkdtemp(prefix="openqq-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENQQ_")}
    env.update(
        AMQP_URL=AMQP_URL,
        OPENQQ_NAMESPACE=namespace,
        OPENQQ_TMPDIR=str(tmpdir),
        OPENQQ_SHOW_MESSAGE="false",
        OPENQQ_LOG_LEVEL="warning",
        OPENQQ_SIM_LOGIN_DELAY="0",
        OPENQQ_SIM_LISTEN=f"127.0.0.1:{free_port()}",
        OPENQQ_LISTEN=f"127.0.0.1:{free_port()}",
    )
    env.update({f"OPENQQ_{k.upper()}": v for k, v in {**DEFAULTS, **settings}.items()})
    log = (tmpdir / "stderr.log").open("wb")
    popen = subprocess.Popen(
        [sys.executable, "-m", "bridge", role], env=env, stdout=subprocess.DEVNULL, stderr=log
    )
    log.close()
    return Proc(popen, tmpdir, env, time.monotonic())


def wait_running(proc: Proc, timeout: float = 120) -> float:
    """Seconds from process start to state ``running``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            msg = f"process exited: {(proc.tmpdir / 'stderr.log').read_text()[-2000:]}"
            raise RuntimeError(msg)
        if proc.state() == "running":
            return time.monotonic() - proc.started
        time.sleep(0.02)
    raise TimeoutError("not running in time")


async def wait_http(url: str, timeout: float = 60) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(url) as r:
                    body = await r.read()
                    if (
                        r.status == 200
                        and body.startswith((b"{", b"["))
                        and b'"code":-7' not in body
                    ):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


def stop(proc: Proc) -> None:
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(20)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()


def new_namespace() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}"


async def cleanup(namespace: str) -> None:
    """Delete what the processes declared (the broker outlives the benchmark)."""
    import aio_pika

    conn = await aio_pika.connect(AMQP_URL)
    try:
        for q in [
            f"{namespace}.default.{k}"
            for k in ("send", "kick", "shutup", "query", "control", "dead", "post_api")
        ]:
            ch = await conn.channel()
            await ch.queue_delete(q)
            await ch.close()
        for x in ("events", "commands", "dead"):
            ch = await conn.channel()
            await ch.exchange_delete(f"{namespace}.{x}")
            await ch.close()
    finally:
        await conn.close()


@dataclass
class Result:
    """One line of the report."""

    part: str
    figure: str
    value: float
    unit: str
    limit: float | None = None
    limit_what: str = ""
    target: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.limit in (None, 0):
            return None
        return self.value / self.limit


@contextmanager
def timer() -> Iterator[list[float]]:
    out: list[float] = []
    t0 = time.perf_counter()
    yield out
    out.append(time.perf_counter() - t0)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]
