"""One controller process per test module, on the real broker, with a post_api receiver."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import queue
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from tests.conftest import delete_namespace
from tests.procs import bridge_env, free_port, start

#: Every account a test of this package may run (their queues are deleted afterwards).
ACCOUNTS = ("a1", "a2", "a3", "qr1", "s1", "hand1", "hand2", "ha1", "default")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return msgspec.json.decode(self.body)


def http_get(base: str, path: str, timeout: float = 40.0) -> Answer:
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as r:
            return Answer(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Answer(e.code, dict(e.headers), e.read())


@dataclass
class Receiver:
    """A post_api receiver in a thread: every POST as (path with query, body)."""

    got: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    url: str = ""

    def serve(self) -> http.server.ThreadingHTTPServer:
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rec.got.put((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/post_api?token=t0"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@dataclass
class Ctl:
    """A controller process and what the tests need to reach it."""

    tmp: Path
    env: dict[str, str]
    ns: str
    base: str
    backend_start_port: int
    receiver: Receiver
    proc: subprocess.Popen[bytes] | None = None
    #: Every local bridge pid check_client showed: cleaned up even if the data file is lost.
    seen: set[int] = field(default_factory=set)

    def start(self, *args: str) -> None:
        self.proc = start(["controller", *args], self.env, self.tmp)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            with contextlib.suppress(OSError):
                http_get(self.base, "/openqq/check_client", timeout=2)
                return
            time.sleep(0.1)
        raise AssertionError(f"controller not listening: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def log(self) -> str:
        return (self.tmp / "stderr.log").read_text(errors="replace")[-4000:]

    def get(self, path: str) -> Answer:
        return http_get(self.base, path)

    def clients(self) -> dict[str, dict]:
        found = {c["client"]: c for c in self.get("/openqq/check_client").json()["client"]}
        self.seen.update(c["pid"] for c in found.values() if c["pid"] is not None)
        return found

    def wait_state(self, client: str, state: str, timeout: float = 30, **match: object) -> dict:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.clients().get(client)
            if seen and seen["state"] == state and all(seen[k] == v for k, v in match.items()):
                return seen
            time.sleep(0.1)
        raise AssertionError(f"{client} not {state} {match}: {seen}\n{self.log()}")

    def stop_all(self) -> None:
        """Stop the controller, then its bridges (they outlive it by design)."""
        # Only processes of this namespace: a pid seen earlier may belong to another by now.
        pids = [p for p in sorted(set(self.bridge_pids()) | self.seen) if _of(p, self.ns)]
        self.stop()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for pid in pids:
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)
            if _of(pid, self.ns):  # still there after 20 s
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def data(self) -> dict:
        path = self.tmp / f"openqq_controller_{self.ns}.json"
        with contextlib.suppress(OSError, msgspec.DecodeError):
            return msgspec.json.decode(path.read_bytes())
        return {"clients": {}, "ports": {}}

    def bridge_pids(self) -> list[int]:
        return [c["pid"] for c in self.data()["clients"].values()]


def _of(pid: int, ns: str) -> bool:
    """Whether process ``pid`` is a bridge of namespace ``ns``."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"OPENQQ_NAMESPACE={ns}".encode() in env


def backend_base(count: int = 16) -> int:
    """A start port with ``count`` free ports from it, below the ephemeral range.

    Ports of the ephemeral range (32768-60999 on Linux) are taken by any outgoing connection
    at any time, so ``backend_start_port + n`` there may be gone when the account appears.
    """
    rng = random.Random()
    while True:
        base = rng.randrange(20000, 32000 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base


@pytest.fixture(scope="module")
def ctl(rabbitmq: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctl]:
    tmp = tmp_path_factory.mktemp("controller")
    ns = f"t-{uuid.uuid4().hex[:10]}"
    receiver = Receiver()
    server = receiver.serve()
    port, backend = free_port(), backend_base()
    env = bridge_env(
        tmp,
        AMQP_URL=rabbitmq,
        OPENQQ_NAMESPACE=ns,
        OPENQQ_CONTROLLER_LISTEN=f"127.0.0.1:{port}",
        OPENQQ_BACKEND_START_PORT=str(backend),
        OPENQQ_POST_API=receiver.url,
        OPENQQ_POST_EVENT_LIST="new_friend",
        OPENQQ_CHECK_EVENT_TIMEOUT="1",
        OPENQQ_SHOW_MESSAGE="false",
    )
    c = Ctl(tmp, env, ns, f"http://127.0.0.1:{port}", backend, receiver)
    c.start()
    try:
        yield c
    finally:
        c.stop_all()
        server.shutdown()
        server.server_close()
        asyncio.run(delete_namespace(rabbitmq, ns, ACCOUNTS))
