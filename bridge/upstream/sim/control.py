"""The control endpoint of the simulated account (setting ``sim_listen``), over HTTP.

``POST /sim/inject`` makes the account receive a message or event, ``POST /sim/load`` starts
or stops the load generator, ``GET /sim/state`` and ``GET /sim/world`` show what it has.
Handlers only decode, call the account and render; errors are JSON ``{code, status}``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import msgspec
from aiohttp import web

from bridge.core import events as ev
from bridge.core.codec import encode
from bridge.errors import BufferFull, UpstreamUnavailable
from bridge.netutil import start_site
from bridge.upstream.sim import inject as inj
from bridge.upstream.sim.world import NotFound, World

log = logging.getLogger(__name__)


class Controlled(Protocol):
    """What the endpoint needs of the account."""

    @property
    def state(self) -> str: ...

    @property
    def world(self) -> World: ...

    @property
    def load_sent(self) -> int: ...

    @property
    def load_refused(self) -> int: ...

    async def inject(self, req: inj.Inject) -> ev.Event: ...

    def start_load(self, req: inj.LoadRequest) -> None: ...


async def _publish_first() -> None:
    """Let the injected event's publish reach the broker's socket before the answer goes out.

    Two turns of the event loop: one for the outbox's publishing task to hand the message to
    the connection, one for the connection's writer task to send it. Sending the answer first
    wakes the caller, which on a busy machine takes the CPU from the publish (the event
    reached its consumers about 0.1 ms later, measured with bench/latency.py).
    """
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _error(status: int, text: str) -> web.Response:
    return web.Response(
        status=status,
        body=encode({"code": status, "status": text}),
        content_type="application/json",
    )


class Control:
    """The ``/sim/*`` HTTP site of one account; ``bound`` is its address once started."""

    def __init__(self, account: Controlled, listen: tuple[str, int] | None) -> None:
        self._account = account
        self._listen = listen
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None

    async def start(self) -> None:
        """Serve the endpoint (nothing when ``sim_listen`` is off)."""
        if self._listen is None:
            return
        host, port = self._listen
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/sim/inject", self._h_inject)
        app.router.add_post("/sim/load", self._h_load)
        app.router.add_get("/sim/state", self._h_state)
        app.router.add_get("/sim/world", self._h_world)
        self._runner, self.bound = await start_site(app, host, port, "sim_listen")
        log.info("simulated account control on http://%s:%d/sim/inject", *self.bound)

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _h_inject(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            req = inj.INJECT_DECODER.decode(body)
            event = await self._account.inject(req)
            await _publish_first()
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            return _error(400, f"invalid inject: {exc}")
        except NotFound as exc:
            return _error(404, str(exc))
        except (UpstreamUnavailable, BufferFull) as exc:
            return _error(503, str(exc))
        return web.Response(
            body=encode({"code": 0, "status": "injected", "event": event}),
            content_type="application/json",
        )

    async def _h_load(self, request: web.Request) -> web.Response:
        try:
            req = msgspec.json.decode(await request.read(), type=inj.LoadRequest)
            self._account.start_load(req)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return _error(400, f"invalid load request: {exc}")
        except NotFound as exc:
            return _error(404, str(exc))
        return web.Response(
            body=encode({"code": 0, "status": "started" if req.rate else "stopped"}),
            content_type="application/json",
        )

    async def _h_state(self, _request: web.Request) -> web.Response:
        a = self._account
        return web.Response(
            body=encode(
                {"state": a.state, "load_sent": a.load_sent, "load_refused": a.load_refused}
            ),
            content_type="application/json",
        )

    async def _h_world(self, _request: web.Request) -> web.Response:
        w = self._account.world
        return web.Response(
            body=encode(
                {
                    "user": w.user,
                    "friends": list(w.friends.values()),
                    "groups": list(w.groups.values()),
                    "discusses": list(w.discusses.values()),
                }
            ),
            content_type="application/json",
        )
