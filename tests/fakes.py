"""Fake peers for tests: a post_api / poll_api receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookRecorder:
    """Records every request; answers from ``script`` (one callable per request) or 200 'ok'."""

    got: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    script: list[Callable[[Received], web.StreamResponse]] = field(default_factory=list)
    default: Callable[[Received], web.StreamResponse] = lambda _r: web.Response(text="ok")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        rec = Received(request.method, request.path_qs, dict(request.headers), await request.read())
        await self.got.put(rec)
        answer = self.script.pop(0) if self.script else self.default
        return answer(rec)

    async def next(self, timeout: float = 5.0) -> Received:
        async with asyncio.timeout(timeout):
            return await self.got.get()


def json_answer(body: dict) -> Callable[[Received], web.StreamResponse]:
    return lambda _r: web.json_response(body)


def status(code: int) -> Callable[[Received], web.StreamResponse]:
    return lambda _r: web.Response(status=code, text=f"status {code}")
