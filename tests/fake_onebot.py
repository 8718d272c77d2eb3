"""FakeOneBot: a OneBot v11 implementation for tests (reference/onebot-mapping.md, the v11 spec).

Forward mode: an aiohttp WebSocket server the bridge connects to. Reverse mode: a client that
connects to the bridge. Either way it checks the token, sends ``lifecycle/connect``, records
every action and answers it from a small world (or from ``script``), and can push events or
drop the connection.

Modes, for the ways real implementations differ: ``text_only`` (go-cqhttp and its descendants
read text frames only: a binary frame is counted and never answered), ``token_style="frame"``
(NapCat and LLOneBot accept the socket, send a retcode 1403 frame, then close),
``sent_before_answer`` (NapCat reportSelfMessage: the ``message_sent`` of a send arrives
before the action's answer), and ``push_raw`` for frames no encoder writes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

SELF_ID = 123456
Answer = dict[str, Any] | None


def ok(data: Any = None) -> dict[str, Any]:
    return {"status": "ok", "retcode": 0, "data": data}


def failed(retcode: int, wording: str = "") -> dict[str, Any]:
    return {
        "status": "failed",
        "retcode": retcode,
        "data": None,
        "message": wording,
        "wording": wording,
    }


class FakeOneBot:
    def __init__(
        self,
        token: str | None = None,
        app_name: str = "NapCat.Onebot",
        categories: bool = True,
        lifecycle: bool = True,
        *,
        self_id: int = SELF_ID,
        text_only: bool = True,
        token_style: str = "http",
        sent_before_answer: bool = False,
        token_frame: dict[str, Any] | None = None,
    ) -> None:
        self.token = token
        self.self_id = self_id
        self.text_only = text_only
        self.token_style = token_style
        self.sent_before_answer = sent_before_answer
        #: The refusal frame of token_style "frame" (default: NapCat's).
        self.token_frame = token_frame or {**failed(1403, "token验证失败"), "echo": None}
        self.binary_frames = 0
        self.app_name = app_name
        self.categories = categories
        self.lifecycle = lifecycle
        self.actions: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.script: dict[str, Callable[[dict[str, Any]], Answer]] = {}
        self.ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse | None = None
        self.connected = asyncio.Event()
        self.connections = 0
        self.rejected = 0
        self.url = ""
        self._ids = itertools.count(1000)
        self.friends = [
            {"user_id": 456789, "nickname": "灰灰", "remark": ""},
            {"user_id": 7891234, "nickname": "测试帐号2", "remark": "哈哈"},
        ]
        self.groups = [
            {
                "group_id": 67890,
                "group_name": "PERL学习交流",
                "member_count": 4,
                "max_member_count": 2000,
            },
            {
                "group_id": 552603,
                "group_name": "Mojo-Webqq开发",
                "member_count": 1,
                "max_member_count": 500,
            },
        ]
        self.members: dict[int, list[dict[str, Any]]] = {
            67890: [
                {"user_id": 45678, "nickname": "Perl大神", "card": "", "role": "owner"},
                {"user_id": SELF_ID, "nickname": "小灰", "card": "小灰卡", "role": "admin"},
                {"user_id": 456789, "nickname": "灰灰", "card": "", "role": "member"},
                {"user_id": 88888, "nickname": "路人甲", "card": "甲", "role": "member"},
            ],
            552603: [{"user_id": SELF_ID, "nickname": "小灰", "card": "", "role": "owner"}],
        }

    # --- the world ---------------------------------------------------------------------------
    def answer(self, action: str, params: dict[str, Any]) -> Answer:
        if action in self.script:
            return self.script[action](params)
        gid = int(params.get("group_id") or 0)
        match action:
            case "get_login_info":
                return ok({"user_id": self.self_id, "nickname": "小灰"})
            case "get_version_info":
                return ok(
                    {"app_name": self.app_name, "app_version": "4.0", "protocol_version": "v11"}
                )
            case "get_friends_with_category":
                if not self.categories:
                    return failed(1404, "unknown action")
                return ok(
                    [{"categoryId": 1, "categoryName": "我的好友", "buddyList": self.friends}]
                )
            case "get_friend_list":
                return ok(self.friends)
            case "get_group_list":
                return ok(self.groups)
            case "get_group_info":
                return ok(
                    next(
                        (g for g in self.groups if g["group_id"] == gid),
                        {"group_id": gid, "group_name": "新群"},
                    )
                )
            case "get_group_member_list":
                return ok(self.members.get(gid, []))
            case "get_group_member_info":
                m = next(
                    (m for m in self.members.get(gid, []) if m["user_id"] == params.get("user_id")),
                    None,
                )
                return ok(m) if m else failed(100, "member not found")
            case "get_stranger_info":
                return ok({"user_id": params.get("user_id"), "nickname": "陌生人"})
            case "send_private_msg" | "send_group_msg" | "send_msg":
                return ok({"message_id": next(self._ids)})
            case "set_group_kick" | "set_group_kick_members" | "set_group_ban":
                return ok(None)
            case _:
                return failed(1404, f"unknown action {action}")

    # --- forward mode: a server --------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            self.rejected += 1
            if self.token_style == "frame":
                # NapCat OB11WebSocketServerAdapter / LLOneBot: accept, say why, close.
                ws = web.WebSocketResponse()
                await ws.prepare(request)
                await ws.send_str(msgspec.json.encode(self.token_frame).decode())
                await ws.close()
                return ws
            status = 401 if "Authorization" not in request.headers else 403
            return web.Response(status=status)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await self._serve(ws)
        return ws

    # --- reverse mode: a client --------------------------------------------------------------
    async def connect_reverse(
        self,
        url: str,
        *,
        token: str | None = None,
        role: str = "Universal",
        self_id: int | None = None,
    ) -> int:
        """Connect to the bridge and serve until closed; returns the handshake status."""
        headers = {"X-Self-ID": str(self_id or self.self_id), "X-Client-Role": role}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with aiohttp.ClientSession() as s:
            try:
                ws = await s.ws_connect(url, headers=headers)
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
            await self._serve(ws)
        return 101

    # --- both ----------------------------------------------------------------------------------
    async def _serve(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.connections += 1
        if self.lifecycle:
            await self.push(
                {"post_type": "meta_event", "meta_event_type": "lifecycle", "sub_type": "connect"}
            )
        self.connected.set()
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY and self.text_only:
                    self.binary_frames += 1
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT and msg.type != aiohttp.WSMsgType.BINARY:
                    break
                frame = msgspec.json.decode(msg.data)
                await self.actions.put(frame)
                reply = self.answer(frame["action"], frame.get("params") or {})
                if reply is not None and self.sent_before_answer:
                    await self._report_self_message(frame, reply)
                if reply is not None:
                    await ws.send_str(
                        msgspec.json.encode({**reply, "echo": frame.get("echo")}).decode()
                    )
        finally:
            self.connected.clear()
            if self.ws is ws:
                self.ws = None

    async def _report_self_message(self, frame: dict[str, Any], reply: dict[str, Any]) -> None:
        action, params = frame["action"], frame.get("params") or {}
        if action not in ("send_group_msg", "send_private_msg") or reply["status"] != "ok":
            return
        group = action == "send_group_msg"
        await self.push(
            {
                "post_type": "message_sent",
                "message_type": "group" if group else "private",
                "sub_type": "normal" if group else "friend",
                "message_id": reply["data"]["message_id"],
                "user_id": self.self_id,
                "target_id": params.get("user_id", 0),
                "group_id": params.get("group_id", 0),
                "message": params.get("message"),
                "sender": {"user_id": self.self_id, "nickname": "小灰"},
            }
        )

    async def push(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None, "not connected"
        full = {"time": int(time.time()), "self_id": self.self_id, **frame}
        await self.ws.send_str(msgspec.json.encode(full).decode())

    async def push_raw(self, text: str) -> None:
        """Send a frame exactly as given (deeply nested, lone surrogates, not JSON)."""
        assert self.ws is not None, "not connected"
        await self.ws.send_str(text)

    async def drop(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def next_action(self, name: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """The next recorded action (of that name, skipping others)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.actions.get()
                if name is None or frame["action"] == name:
                    return frame
