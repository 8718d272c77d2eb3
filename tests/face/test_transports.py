"""The face's transports with a plain client: forward WebSocket, HTTP API, auth, HTTP POST."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web

from tests.face.conftest import GROUP, MEMBER, SELF_ID, Env

pytestmark = pytest.mark.rabbitmq


async def next_frame(ws: aiohttp.ClientWebSocketResponse, post_type: str | None = None) -> Any:
    async with asyncio.timeout(15):
        while True:
            frame = msgspec.json.decode((await ws.receive()).data)
            if post_type is None or frame.get("post_type") == post_type:
                return frame


async def test_forward_ws_lifecycle_event_and_action(env: Env) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(env.url + "/") as ws:
        first = await next_frame(ws)
        assert first == {
            "time": first["time"],
            "self_id": SELF_ID,
            "post_type": "meta_event",
            "meta_event_type": "lifecycle",
            "sub_type": "connect",
        }
        await env.inject("hello [there] & co")
        ev = await next_frame(ws, "message")
        assert ev["message_type"] == "group"
        assert ev["group_id"] == GROUP
        assert ev["user_id"] == MEMBER
        assert ev["self_id"] == SELF_ID
        assert ev["message"] == [{"type": "text", "data": {"text": "hello [there] & co"}}]
        assert ev["raw_message"] == "hello &#91;there&#93; &amp; co"
        assert 0 < ev["message_id"] < 2**31
        await ws.send_json(
            {
                "action": "send_group_msg",
                "params": {"group_id": GROUP, "message": "pong"},
                "echo": {"n": 1},
            }
        )
        out = await next_frame(ws, None)
        while "echo" not in out:
            out = await next_frame(ws, None)
        assert out["status"] == "ok", out
        assert out["retcode"] == 0
        assert out["echo"] == {"n": 1}
        assert isinstance(out["data"]["message_id"], int)
        await env.sent("pong")


async def test_unknown_action_is_1404_at_once(env: Env) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(env.url + "/api") as ws:
        await ws.send_json({"action": "get_cookies", "params": {}, "echo": "x"})
        out = await next_frame(ws)
        assert out["retcode"] == 1404
        assert out["status"] == "failed"
        assert "get_cookies" in out["wording"]
        assert out["echo"] == "x"


@pytest.mark.parametrize(
    ("how", "status"),
    [("none", 401), ("wrong", 403), ("bearer", 200), ("token", 200), ("param", 200)],
)
@pytest.mark.parametrize("face_options", [{"onebot_server_token": "s3cret"}])
async def test_http_api_access_token(env: Env, how: str, status: int) -> None:
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    if how == "wrong":
        headers["Authorization"] = "Bearer nope"
    elif how == "bearer":
        headers["Authorization"] = "Bearer s3cret"
    elif how == "token":
        headers["Authorization"] = "Token s3cret"
    elif how == "param":
        params["access_token"] = "s3cret"
    async with (
        aiohttp.ClientSession() as s,
        s.get(env.url + "/get_login_info", headers=headers, params=params) as r,
    ):
        assert r.status == status
        if status == 200:
            body = await r.json()
            assert body["data"] == {"user_id": SELF_ID, "nickname": body["data"]["nickname"]}
    async with aiohttp.ClientSession() as s:
        if status != 200:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await s.ws_connect(env.url + "/", headers=headers, params=params)
            assert err.value.status == status


async def test_http_api_form_json_and_404(env: Env) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(
            env.url + "/send_group_msg", data={"group_id": str(GROUP), "message": "by form"}
        ) as r:
            assert (await r.json())["retcode"] == 0
        await env.sent("by form")
        async with s.post(
            env.url + "/send_msg/",
            json={
                "group_id": str(GROUP),
                "message": [{"type": "text", "data": {"text": "by json"}}],
            },
        ) as r:
            assert (await r.json())["retcode"] == 0
        await env.sent("by json")
        async with s.post(env.url + "/no_such_action", json={}) as r:
            assert r.status == 404
            assert (await r.json())["retcode"] == 1404
        async with s.post(
            env.url + "/send_group_msg", data=b"{", headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 400
        async with s.post(
            env.url + "/send_group_msg", data=b"x", headers={"Content-Type": "text/plain"}
        ) as r:
            assert r.status == 406
        async with s.get(
            env.url + "/send_group_msg", params={"group_id": "x", "message": "m"}
        ) as r:
            assert (await r.json())["retcode"] == 1400
        async with s.get(
            env.url + "/send_group_msg", params={"group_id": "1", "message": "m"}
        ) as r:
            body = await r.json()
            assert body["retcode"] == 100, body
        async with s.get(
            env.url + "/send_group_msg_async", params={"group_id": GROUP, "message": "later"}
        ) as r:
            assert (await r.json())["status"] == "async"
        await env.sent("later")


class Receiver:
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
        self.answer: bytes = b""
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        await self.got.put((dict(request.headers), body))
        return web.Response(body=self.answer, content_type="application/json")


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = await aiohttp_server(app, port=0)
    rec.url = str(server.make_url("/hook"))
    return rec


async def test_http_post_signature_and_quick_reply(
    rabbitmq: str, ns: str, tmp_path: Any, request: pytest.FixtureRequest, receiver: Receiver
) -> None:
    from tests.face.conftest import face_env

    receiver.answer = b'{"reply": "pong", "at_sender": false}'
    async with face_env(
        rabbitmq,
        ns,
        tmp_path,
        request,
        onebot_server_post=[f"hook={receiver.url}"],
        onebot_server_secret="k3y",
    ) as env:
        await env.inject("ping")
        async with asyncio.timeout(15):
            while True:
                headers, body = await receiver.got.get()
                if b'"post_type":"message"' in body:
                    break
        sig = "sha1=" + hmac.new(b"k3y", body, hashlib.sha1).hexdigest()
        assert headers["X-Signature"] == sig
        assert headers["X-Self-ID"] == str(SELF_ID)
        await env.sent("pong")


@pytest.mark.parametrize("face_options", [{"heartbeat_seconds": 0.2}])
async def test_heartbeat_meta_event(env: Env) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(env.url + "/event") as ws:
        beat = await next_frame(ws, "meta_event")
        while beat["meta_event_type"] != "heartbeat":
            beat = await next_frame(ws, "meta_event")
        assert set(beat) == {
            "time",
            "self_id",
            "post_type",
            "meta_event_type",
            "status",
            "interval",
        }
        assert beat["status"] == {"online": True, "good": True}
        assert beat["interval"] == 200


class FlakyReceiver(Receiver):
    """Answers 503 to the first ``fail`` requests, then 204."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail
        self.ok: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=503)
        await self.ok.put(body)
        return web.Response(status=204)


async def test_http_post_waits_for_a_receiver_that_fails(
    rabbitmq: str, ns: str, tmp_path: Any, request: pytest.FixtureRequest, aiohttp_server: Any
) -> None:
    from tests.face.conftest import face_env

    rec = FlakyReceiver(fail=3)
    app = web.Application()
    app.router.add_post("/", rec.handle)
    server = await aiohttp_server(app)
    async with face_env(
        rabbitmq, ns, tmp_path, request, onebot_server_post=[f"hook={server.make_url('/')}"]
    ) as env:
        for text in ("p1", "p2"):
            await env.inject(text)
        got: list[str] = []
        async with asyncio.timeout(30):
            while "p2" not in got:
                frame = msgspec.json.decode(await rec.ok.get())
                if frame.get("post_type") == "message":
                    got.append(frame["raw_message"])
        assert got == ["p1", "p2"]
