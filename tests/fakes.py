"""Fake peers for tests: a post_api / poll_api receiver, a command delivery."""

from __future__ import annotations

import asyncio
import uuid
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


class FakeDelivery:
    """A command delivery as a broker would hand it over, recording how it was settled."""

    def __init__(
        self, body: bytes, message_id: str | None = None, *, redelivered: bool = False
    ) -> None:
        self.body = body
        self.exchange = "t.commands"
        self.routing_key = "send.default"
        self.message_id = message_id if message_id is not None else uuid.uuid4().hex
        self.correlation_id = "c"
        self.reply_to = "replies"
        self.type = None
        self.headers: dict[str, object] = {}
        self.redelivered = redelivered
        self.timestamp = None
        self.expiration_ms = None
        self.app_id = None
        self.content_type = "application/json"
        self.settled: list[str] = []

    async def ack(self) -> None:
        self.settled.append("ack")

    async def reject(self, *, requeue: bool) -> None:
        self.settled.append(f"reject requeue={requeue}")
