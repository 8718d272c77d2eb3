"""The status page and the health, readiness and metrics endpoints, for any process.

:class:`Observer` answers ``/healthz``, ``/readyz``, ``/metrics`` and ``/status``. The adapter
puts it in front of the Openqq API (same port); the bridge serves it alone on ``metrics_listen``;
the controller gives it one :class:`StatusSource` per account. A source says what one account
looks like now (:class:`AccountStatus`); :class:`AccountTracker` builds most of it from the
account's events on the bus (state, QR code, messages per minute) and :func:`queue_depths`
asks the broker for the rest (passive declares give message counts).

``/status`` is one HTML page with a little script that reloads ``/status?format=json`` every
two seconds; no frontend build.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aio_pika
import msgspec
from aiohttp import web

from bridge.bus.amqp import AmqpBus
from bridge.bus.base import Bus
from bridge.bus.memory import MemoryBus
from bridge.core.commands import QUEUE_KINDS
from bridge.core.routing import Names
from bridge.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

#: Chinese labels shown beside the state names (those of Mojo::Webqq's state_change).
STATE_LABELS = {
    "init": "初始化",
    "loading": "加载中",
    "scaning": "等待扫码",
    "updating": "更新数据",
    "running": "运行中",
    "stop": "已停止",
    "unknown": "未知",
}
#: Seconds over which messages per minute are counted.
WINDOW = 60.0
#: Seconds a broker queue-depth answer is reused (many open pages, one question).
DEPTH_CACHE = 2.0


class AccountStatus(msgspec.Struct, kw_only=True):
    """One account as the status page shows it."""

    account: str
    state: str
    state_label: str
    qrcode: str | None = None
    messages_in_per_minute: int = 0
    messages_out_per_minute: int = 0
    queues: dict[str, int | None] = {}
    dead_letters: int | None = None
    post_api_backlog: int | None = None
    errors: list[str] = []


class StatusSource(Protocol):
    """Anything that can describe one account."""

    async def status(self) -> AccountStatus:
        """The account now."""
        ...


class AccountTracker:
    """State, QR code and message rates of one account, from its events on the bus."""

    def __init__(self, account: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.account = account
        self.state = "unknown"
        self.qrcode: str | None = None
        self._clock = clock
        self._in: collections.deque[float] = collections.deque()
        self._out: collections.deque[float] = collections.deque()

    def on_event(self, kind: str, body: bytes) -> None:
        """Take one event (its ``type`` and JSON body)."""
        if kind.startswith("receive_message."):
            self._in.append(self._clock())
        elif kind.startswith("send_message."):
            self._out.append(self._clock())
        elif kind == "event.state_change":
            with contextlib.suppress(msgspec.DecodeError, ValueError, IndexError, TypeError):
                self.state = str(msgspec.json.decode(body)["params"][1])
                if self.state != "scaning":
                    self.qrcode = None
        elif kind == "event.input_qrcode":
            with contextlib.suppress(msgspec.DecodeError, ValueError, IndexError, TypeError):
                b64 = "".join(str(msgspec.json.decode(body)["params"][1]).split())
                self.qrcode = f"data:image/png;base64,{b64}"
        if len(self._in) > 4096 or len(self._out) > 4096:
            self._trim()

    def _trim(self) -> None:
        limit = self._clock() - WINDOW
        for q in (self._in, self._out):
            while q and q[0] < limit:
                q.popleft()

    def per_minute(self) -> tuple[int, int]:
        """Messages received and sent over the last minute."""
        self._trim()
        return len(self._in), len(self._out)


class RecentErrors(logging.Handler):
    """The last warnings and errors of this process, for the status page."""

    def __init__(self, size: int = 50) -> None:
        super().__init__(logging.WARNING)
        self.lines: collections.deque[tuple[str | None, str]] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep one line: time, level, message."""
        try:
            when = time.strftime("%H:%M:%S", time.localtime(record.created))
            line = f"{when} {record.levelname} {record.getMessage()}"[:500]
        except Exception:  # noqa: BLE001 - a bad log call must not break logging
            return
        self.lines.append((getattr(record, "account", None), line))

    def of(self, account: str, n: int = 5) -> list[str]:
        """The last ``n`` lines about ``account`` (by the record's account, or its text)."""
        # The name as a word: account "a" is not in "bad data".
        named = re.compile(rf"(?<![\w-]){re.escape(account)}(?![\w-])")
        found = [
            line
            for who, line in self.lines
            if who == account or (who is None and named.search(line))
        ]
        return found[-n:]


#: The process's recent errors (cli installs it on the root logger).
RECENT = RecentErrors()


def bus_connected(bus: Bus) -> bool:
    """Whether the bus's broker connection is up (the embedded bus always is)."""
    if isinstance(bus, AmqpBus):
        return bus.connected
    return True


class QueueDepths:
    """Message counts of an account's command, dead-letter and post_api queues (cached)."""

    def __init__(self, bus: Bus, names: Names, account: str, post_api_queue: str | None) -> None:
        self._bus = bus
        self._names = names
        self._account = account
        self._post_api = post_api_queue
        self._at = float("-inf")
        #: The last answer (kind -> messages), also read by the metrics.
        self.last: dict[str, int | None] = {}

    def wanted(self) -> dict[str, str]:
        """kind (send, ..., dead, post_api) -> queue name."""
        out: dict[str, str] = {
            kind: self._names.command_queue(self._account, kind) for kind in QUEUE_KINDS
        }
        out["dead"] = self._names.dead_queue(self._account)
        if self._post_api:
            out["post_api"] = self._post_api
        return out

    async def get(self) -> dict[str, int | None]:
        """kind -> messages waiting (None when the broker did not say)."""
        if time.monotonic() - self._at < DEPTH_CACHE:
            return self.last
        wanted = self.wanted()
        try:
            async with asyncio.timeout(2):
                self.last = await self._ask(wanted)
        except TimeoutError:
            self.last = dict.fromkeys(wanted)
        self._at = time.monotonic()
        return self.last

    async def _ask(self, wanted: dict[str, str]) -> dict[str, int | None]:
        bus = self._bus
        out: dict[str, int | None] = dict.fromkeys(wanted)
        if isinstance(bus, MemoryBus):
            for kind, name in wanted.items():
                stored = bus.broker.queues.get(name)
                out[kind] = None if stored is None else len(stored.messages)
            return out
        if not isinstance(bus, AmqpBus) or not bus.connected:
            return out
        for kind, name in wanted.items():
            # A passive declare of a missing queue closes the channel: one channel each.
            try:
                ch = await bus.connection.channel()
            except (aio_pika.exceptions.AMQPError, *aio_pika.exceptions.CONNECTION_EXCEPTIONS):
                return out
            try:
                q = await ch.declare_queue(name, passive=True)
                out[kind] = q.declaration_result.message_count
            except (aio_pika.exceptions.AMQPError, *aio_pika.exceptions.CONNECTION_EXCEPTIONS):
                out[kind] = None
            finally:
                with contextlib.suppress(Exception):
                    await ch.close()
        return out


class BusAccount:
    """A status source from a tracker, the broker's queue depths and this process's errors."""

    def __init__(
        self,
        tracker: AccountTracker,
        depths: QueueDepths,
        *,
        state: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.tracker = tracker
        self.depths = depths
        self._state = state

    async def status(self) -> AccountStatus:
        """The account now."""
        t = self.tracker
        state = self._state() or t.state
        got_in, got_out = t.per_minute()
        depths = dict(await self.depths.get())
        dead = depths.pop("dead", None)
        backlog = depths.pop("post_api", None)
        return AccountStatus(
            account=t.account,
            state=state,
            state_label=STATE_LABELS.get(state, ""),
            qrcode=t.qrcode if state == "scaning" else None,
            messages_in_per_minute=got_in,
            messages_out_per_minute=got_out,
            queues=depths,
            dead_letters=dead,
            post_api_backlog=backlog,
            errors=RECENT.of(t.account),
        )


Readiness = Callable[[], str | None]


class Observer:
    """``/healthz``, ``/readyz``, ``/metrics``, ``/status`` of one process."""

    PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/status"})
    #: Paths answered without the access token.
    OPEN = frozenset({"/healthz", "/readyz"})

    def __init__(
        self,
        metrics: Metrics,
        ready: Readiness,
        sources: Callable[[], Sequence[StatusSource]] = lambda: (),
        title: str = "openqq-bridge",
    ) -> None:
        self.metrics = metrics
        self.ready = ready
        self.sources = sources
        self.title = title

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one of :attr:`PATHS`."""
        match request.path:
            case "/healthz":
                return web.Response(text="ok\n")
            case "/readyz":
                reason = self.ready()
                if reason is None:
                    return web.Response(text="ready\n")
                return web.Response(status=503, text=f"not ready: {reason}\n")
            case "/metrics":
                return web.Response(
                    body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE}
                )
            case _:
                if request.query.get("format") == "json":
                    return web.Response(
                        body=msgspec.json.encode(await self.snapshot()),
                        content_type="application/json",
                    )
                return web.Response(
                    text=PAGE.replace("{title}", self.title),
                    content_type="text/html",
                    headers={"Cache-Control": "no-store"},
                )

    async def snapshot(self) -> dict[str, Any]:
        """What the page shows: every account, readiness, the time."""
        accounts = await asyncio.gather(*(s.status() for s in self.sources()))
        return {
            "title": self.title,
            "ready": self.ready() or "ready",
            "time": int(time.time()),
            "accounts": sorted(accounts, key=lambda a: a.account),
        }

    def app(self) -> web.Application:
        """An application serving only these paths (the bridge's ``metrics_listen``)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            if request.path in self.PATHS:
                return await self.handle(request)
            return web.Response(status=404, text="not found\n")

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handler)
        return app


def first_reason(*checks: Readiness) -> Readiness:
    """A readiness made of several: the first reason not to be ready, or None."""

    def ready() -> str | None:
        for check in checks:
            reason = check()
            if reason is not None:
                return reason
        return None

    return ready


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{title} status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em} #meta{color:#666;margin-bottom:1em}
.acct{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin:0 0 1em;
max-width:56em}
.acct h2{font-size:1.1em;margin:0 0 .4em}
.state{display:inline-block;padding:.1em .5em;border-radius:4px;font-weight:600;color:#fff;
background:#888}
.state.running{background:#2e7d32}.state.scaning{background:#ef6c00}.state.stop{background:#c62828}
.state.loading,.state.updating,.state.init{background:#1565c0}
table{border-collapse:collapse;margin:.4em 0}td,th{padding:.15em .8em .15em 0;text-align:left}
th{color:#666;font-weight:normal}
.errors{font:12px monospace;color:#b71c1c;white-space:pre-wrap;margin:.3em 0 0}
img.qr{width:160px;height:160px;image-rendering:pixelated;border:1px solid #ccc}
</style></head>
<body><h1>{title}</h1><div id="meta">loading…</div><div id="accounts"></div>
<script>
"use strict";
const esc = s => String(s ?? "").replace(/[&<>"']/g,
  c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\\"":"&quot;","'":"&#39;"}[c]));
const num = v => (v === null || v === undefined) ? "—" : String(v);
function render(data) {
  document.getElementById("meta").textContent =
    `${data.ready} · updated ${new Date(data.time * 1000).toLocaleTimeString()}`;
  const html = data.accounts.map(a => {
    const queues = Object.entries(a.queues).map(([k, v]) =>
      `<td>${esc(k)}: <b>${num(v)}</b></td>`).join("");
    const qr = a.qrcode ? `<p>扫码登录 scan to log in:<br>
<img class="qr" alt="QR code" src="${esc(a.qrcode)}"></p>` : "";
    const errors = a.errors.length ?
      `<div class="errors">${a.errors.map(esc).join("\\n")}</div>` : "";
    const st = esc(a.state);
    return `<div class="acct" data-account="${esc(a.account)}">
<h2>${esc(a.account)} <span class="state ${st}" data-state="${st}">${st}</span>
${esc(a.state_label)}</h2>
<table><tr><th>messages/min in 收</th><td class="in">${a.messages_in_per_minute}</td>
<th>out 发</th><td class="out">${a.messages_out_per_minute}</td></tr></table>
<table><tr><th>command queues</th>${queues}</tr>
<tr><th>dead letters</th><td class="dead">${num(a.dead_letters)}</td>
<th>post_api backlog</th><td class="backlog">${num(a.post_api_backlog)}</td></tr></table>
${qr}${errors}</div>`;
  }).join("");
  document.getElementById("accounts").innerHTML = html || "<p>no accounts</p>";
}
async function refresh() {
  const q = new URLSearchParams(location.search); q.set("format", "json");
  try {
    const r = await fetch(location.pathname + "?" + q, {cache: "no-store"});
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    render(await r.json());
  } catch (e) {
    document.getElementById("meta").textContent = `cannot load status: ${e.message}`;
  }
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
"""
