"""OneBot v11 actions (``api/public.md``) answered with bus commands and the contact replica.

:class:`Actions` turns ``{action, params}`` into the ``data`` of a reply, or raises
:class:`ActionError` with a OneBot ``retcode`` and a ``wording``. Sends, kicks and mutes are
commands on the bus (RPC, so the reply says whether QQ took them); lists and lookups are
answered from the :class:`ContactReplica` the bus keeps current. ``<action>_async`` and
``<action>_rate_limited`` run in the background and answer ``status: async`` at once.

Retcodes: 1400 bad parameters, 1404 unknown action (answered at once: frameworks probe
extensions when they connect), 100 the bridge refused (contact not found, QQ said no, a segment
the bus cannot carry), 200 the bus did not answer in time (the result is unknown), 1 async.
"""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from bridge import __version__
from bridge.adapters.onebot.translate import Json, MessageIds, group_sender, qq, sex_of
from bridge.adapters.openqq.replica import ContactReplica
from bridge.bus.rpc import ReplyLost, RpcClient
from bridge.core import commands as c
from bridge.core import cqcode
from bridge.core.events import Segment
from bridge.core.model import Group, GroupMember
from bridge.errors import BridgeError, NoRoute, RpcTimeout

log = logging.getLogger(__name__)

RETCODE_ASYNC = 1
RETCODE_FAILED = 100
RETCODE_UNKNOWN_RESULT = 200
RETCODE_BAD_REQUEST = 1400
RETCODE_NOT_FOUND = 1404
#: Segments the bus carries (as Openqq text); others are refused rather than sent wrong.
SENDABLE = frozenset({"text", "at", "reply"})


class ActionError(Exception):
    """An action failed: the OneBot ``retcode`` and the words for ``wording``."""

    def __init__(self, retcode: int, wording: str) -> None:
        super().__init__(wording)
        self.retcode = retcode
        self.wording = wording


def reply(data: Any, echo: Any = None, *, with_echo: bool = False) -> Json:
    """An ``ok`` reply frame."""
    out: Json = {"status": "ok", "retcode": 0, "data": data, "message": "", "wording": ""}
    if with_echo:
        out["echo"] = echo
    return out


def failure(err: ActionError, echo: Any = None, *, with_echo: bool = False) -> Json:
    """A ``failed`` reply frame (``async`` for retcode 1)."""
    out: Json = {
        "status": "async" if err.retcode == RETCODE_ASYNC else "failed",
        "retcode": err.retcode,
        "data": None,
        "message": err.wording,
        "wording": err.wording,
    }
    if with_echo:
        out["echo"] = echo
    return out


def _bad(text: str) -> ActionError:
    return ActionError(RETCODE_BAD_REQUEST, text)


def number(params: Mapping[str, Any], key: str, default: int | None = None) -> int:
    """An integer parameter: a JSON number or a decimal string (query and form values)."""
    value = params.get(key)
    if value is None or value == "":
        if default is not None:
            return default
        raise _bad(f"parameter {key} is required")
    if isinstance(value, bool):
        raise _bad(f"parameter {key} must be a number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise _bad(f"parameter {key} must be a number, not {value!r}")


def flag(params: Mapping[str, Any], key: str, *, default: bool) -> bool:
    """A boolean parameter: JSON true/false or ``true``/``false``/``1``/``0`` text."""
    value = params.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.lower() in ("true", "1", "yes"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no"):
        return False
    raise _bad(f"parameter {key} must be true or false, not {value!r}")


def message_segments(params: Mapping[str, Any]) -> list[Segment]:
    """The ``message`` parameter (string, segment array or one segment) as segments."""
    message = params.get("message")
    if isinstance(message, str):
        if flag(params, "auto_escape", default=False):
            return [Segment(type="text", data={"text": message})]
        return cqcode.decode(message)
    if isinstance(message, Mapping):
        message = [message]
    if not isinstance(message, list) or not message:
        raise _bad("parameter message is required: a string, a segment or a segment array")
    out: list[Segment] = []
    for seg in message:
        if not isinstance(seg, Mapping) or not isinstance(seg.get("type"), str):
            raise _bad(f"message segment {seg!r} is not {{type, data}}")
        data = seg.get("data") or {}
        if not isinstance(data, Mapping):
            raise _bad(f"message segment {seg['type']} has data that is not an object")
        out.append(
            Segment(
                type=seg["type"],
                data={
                    str(k): v if isinstance(v, str | int | float | bool) else str(v)
                    for k, v in data.items()
                    if v is not None
                },
            )
        )
    return out


class Actions:
    """The actions the face answers, for one account."""

    def __init__(
        self,
        rpc: RpcClient,
        replica: ContactReplica,
        ids: MessageIds,
        account: str,
        *,
        timeout: float,
        online: Callable[[], bool],
    ) -> None:
        self._rpc = rpc
        self._replica = replica
        self._ids = ids
        self._account = account
        self._timeout = timeout
        self._online = online
        self._table: dict[str, Callable[[Mapping[str, Any]], Awaitable[Any]]] = {
            "send_private_msg": self.send_private_msg,
            "send_group_msg": self.send_group_msg,
            "send_msg": self.send_msg,
            "delete_msg": self.delete_msg,
            "get_msg": self.get_msg,
            "set_group_kick": self.set_group_kick,
            "set_group_ban": self.set_group_ban,
            "get_login_info": self.get_login_info,
            "get_stranger_info": self.get_stranger_info,
            "get_friend_list": self.get_friend_list,
            "get_group_info": self.get_group_info,
            "get_group_list": self.get_group_list,
            "get_group_member_info": self.get_group_member_info,
            "get_group_member_list": self.get_group_member_list,
            "can_send_image": self.can_send,
            "can_send_record": self.can_send,
            "get_status": self.get_status,
            "get_version_info": self.get_version_info,
        }

    @property
    def names(self) -> frozenset[str]:
        """Every action answered (without the _async/_rate_limited suffixes)."""
        return frozenset(self._table)

    def resolve(self, action: str) -> tuple[Callable[[Mapping[str, Any]], Awaitable[Any]], bool]:
        """The handler of an action and whether it was asked for asynchronously."""
        background = False
        for suffix in ("_async", "_rate_limited"):
            if action.endswith(suffix) and action.removesuffix(suffix) in self._table:
                action, background = action.removesuffix(suffix), True
        handler = self._table.get(action)
        if handler is None:
            raise ActionError(
                RETCODE_NOT_FOUND,
                f"action {action!r} is not supported by the openqq-bridge OneBot face",
            )
        return handler, background

    # --- bus ---------------------------------------------------------------------------
    async def _call(self, cmd: c.Command) -> bytes:
        try:
            return await self._rpc.call(self._account, cmd, timeout=self._timeout)
        except (RpcTimeout, ReplyLost) as exc:
            raise ActionError(RETCODE_UNKNOWN_RESULT, f"result unknown: {exc}") from exc
        except NoRoute as exc:
            raise ActionError(RETCODE_FAILED, f"no bridge runs for the account: {exc}") from exc
        except (BridgeError, ConnectionError) as exc:
            raise ActionError(RETCODE_UNKNOWN_RESULT, f"the bus failed: {exc}") from exc

    def _content(self, segments: list[Segment], group: int | None) -> str:
        parts: list[str] = []
        for seg in segments:
            if seg.type not in SENDABLE:
                msg = (
                    f"message segment {seg.type!r} cannot be sent through the bus"
                    " (text, at and reply only)"
                )
                raise ActionError(RETCODE_FAILED, msg)
            if seg.type == "text":
                parts.append(str(seg.data.get("text", "")))
            elif seg.type == "at":
                parts.append(self._at(str(seg.data.get("qq", "")), group))
            # reply: Openqq text has no quotes; the message goes out without it.
        # "@name " as Openqq writes mentions, without doubling a space the text brings.
        content = "".join(
            p[:-1] if p.startswith("@") and p.endswith(" ") and nxt[:1].isspace() else p
            for p, nxt in zip(parts, [*parts[1:], ""][: len(parts)], strict=True)
        )
        if not content:
            raise _bad("the message is empty")
        if len(content) > c.MAX_CONTENT:
            raise _bad(f"the message is longer than {c.MAX_CONTENT} characters")
        return content

    def _at(self, target: str, group: int | None) -> str:
        if target == "all":
            return "@全体成员 "
        name = target
        if group is not None and target.isdigit():
            g = self._replica.book.find_group(uid=group)
            m = self._replica.book.find_member(g, uid=int(target)) if g else None
            if m is not None:
                name = m.card or m.name
        return f"@{name} "

    async def _send(self, cmd: c.SendFriendMessage | c.SendGroupMessage) -> Json:
        body = await self._call(cmd)
        try:
            rep = msgspec.json.decode(body, type=c.SendReply)
        except msgspec.ValidationError as exc:
            raise ActionError(RETCODE_FAILED, f"unexpected reply from the bridge: {exc}") from exc
        if rep.code == c.CODE_RESULT_UNKNOWN:
            raise ActionError(RETCODE_UNKNOWN_RESULT, f"{rep.status}: {rep.info or ''}".strip())
        if rep.code != 0:
            info = rep.info if isinstance(rep.info, str) else ""
            raise ActionError(RETCODE_FAILED, f"{rep.status} (code {rep.code}) {info}".strip())
        return {"message_id": MessageIds.to_onebot(rep.id or 0)}

    async def send_private_msg(self, params: Mapping[str, Any]) -> Json:
        """``send_private_msg``: a friend by QQ number."""
        uid = number(params, "user_id")
        content = self._content(message_segments(params), None)
        return await self._send(c.SendFriendMessage(uid=uid, content=content))

    async def send_group_msg(self, params: Mapping[str, Any]) -> Json:
        """``send_group_msg``: a group by number."""
        gid = number(params, "group_id")
        content = self._content(message_segments(params), gid)
        return await self._send(c.SendGroupMessage(uid=gid, content=content))

    async def send_msg(self, params: Mapping[str, Any]) -> Json:
        """``send_msg``: private or group, by ``message_type`` or by which id is given."""
        kind = params.get("message_type")
        if kind is None:
            kind = "group" if params.get("group_id") not in (None, "") else "private"
        if kind == "group":
            return await self.send_group_msg(params)
        if kind == "private":
            return await self.send_private_msg(params)
        raise _bad(f"message_type must be private or group, not {kind!r}")

    async def delete_msg(self, params: Mapping[str, Any]) -> None:
        """``delete_msg``: the bus has no recall command yet: refused with the reason."""
        ob_id = number(params, "message_id")
        known = "" if self._ids.find(ob_id) else " (and the message is not among the recent)"
        msg = f"delete_msg: the bus has no recall command{known}"
        raise ActionError(RETCODE_FAILED, msg)

    async def get_msg(self, params: Mapping[str, Any]) -> Json:
        """``get_msg``: a recent message the face passed on."""
        ob_id = number(params, "message_id")
        found = self._ids.find(ob_id)
        if found is None:
            raise ActionError(RETCODE_FAILED, f"message {ob_id} is not among the recent messages")
        e = found.event
        return {
            "time": e["time"],
            "message_type": e["message_type"],
            "message_id": ob_id,
            "real_id": ob_id,
            "sender": e["sender"],
            "message": e["message"],
        }

    async def set_group_kick(self, params: Mapping[str, Any]) -> None:
        """``set_group_kick``: one member (``reject_add_request`` is not on the bus)."""
        cmd = c.KickGroupMember(
            group_uid=number(params, "group_id"), member_uid=[number(params, "user_id")]
        )
        await self._status(cmd)

    async def set_group_ban(self, params: Mapping[str, Any]) -> None:
        """``set_group_ban``: mute for ``duration`` seconds (default 1800, 0 lifts)."""
        duration = number(params, "duration", 30 * 60)
        if not 0 <= duration <= c.MAX_SHUTUP_SECONDS:
            raise _bad(f"duration must be 0..{c.MAX_SHUTUP_SECONDS} seconds")
        cmd = c.ShutupGroupMember(
            group_uid=number(params, "group_id"),
            member_uid=[number(params, "user_id")],
            time=duration,
        )
        await self._status(cmd)

    async def _status(self, cmd: c.Command) -> None:
        body = await self._call(cmd)
        rep = msgspec.json.decode(body, type=c.StatusReply)
        if rep.code != 0:
            raise ActionError(RETCODE_FAILED, f"{rep.status} (code {rep.code})")

    # --- reads from the replica --------------------------------------------------------
    async def _ready(self) -> None:
        # Right after a start the contacts are still coming from the bridge: wait for them
        # (as long as a command would wait) rather than answer a bot with an error.
        try:
            async with asyncio.timeout(self._timeout):
                await self._replica.ready.wait()
        except TimeoutError as exc:
            msg = f"the contact list is still loading after {self._timeout:g}s"
            raise ActionError(RETCODE_UNKNOWN_RESULT, msg) from exc

    async def get_login_info(self, _params: Mapping[str, Any]) -> Json:
        """``get_login_info``: the account's QQ number and nickname."""
        await self._ready()
        user = self._replica.book.user
        assert user is not None
        return {"user_id": qq(user.uid, user.id), "nickname": user.name}

    async def get_stranger_info(self, params: Mapping[str, Any]) -> Json:
        """``get_stranger_info``: from friends and group members the account knows."""
        await self._ready()
        uid = number(params, "user_id")
        book = self._replica.book
        friend = book.find_friend(uid=uid)
        if friend is not None:
            return {"user_id": uid, "nickname": friend.name, "sex": "unknown", "age": 0}
        for g in book.groups:
            m = book.find_member(g, uid=uid)
            if m is not None:
                return {"user_id": uid, "nickname": m.name, "sex": sex_of(m.sex), "age": 0}
        raise ActionError(RETCODE_FAILED, f"user {uid} is neither a friend nor a known member")

    async def get_friend_list(self, _params: Mapping[str, Any]) -> list[Json]:
        """``get_friend_list``."""
        await self._ready()
        return [
            {"user_id": qq(f.uid, f.id), "nickname": f.name, "remark": f.markname or ""}
            for f in self._replica.book.friends
        ]

    def _group(self, gid: int) -> Group:
        group = self._replica.book.find_group(uid=gid)
        if group is None:
            raise ActionError(RETCODE_FAILED, f"group {gid} not found")
        return group

    @staticmethod
    def group_info(g: Group) -> Json:
        """The OneBot group object."""
        return {
            "group_id": qq(g.uid, g.id),
            "group_name": g.name,
            "member_count": len(g.member),
            "max_member_count": g.max_member or 0,
        }

    async def get_group_info(self, params: Mapping[str, Any]) -> Json:
        """``get_group_info``."""
        await self._ready()
        return self.group_info(self._group(number(params, "group_id")))

    async def get_group_list(self, _params: Mapping[str, Any]) -> list[Json]:
        """``get_group_list``."""
        await self._ready()
        return [self.group_info(g) for g in self._replica.book.groups]

    @staticmethod
    def member_info(gid: int, m: GroupMember) -> Json:
        """The OneBot group member object (``get_group_member_info``)."""
        sender = group_sender(m, qq(m.uid, m.id), m.name)
        return {
            "group_id": gid,
            "user_id": sender["user_id"],
            "nickname": sender["nickname"],
            "card": sender["card"],
            "sex": sender["sex"],
            "age": 0,
            "area": sender["area"],
            "join_time": m.join_time,
            "last_sent_time": m.last_speak_time,
            "level": "",
            "role": m.role,
            "unfriendly": False,
            "title": "",
            "title_expire_time": 0,
            "card_changeable": False,
        }

    async def get_group_member_info(self, params: Mapping[str, Any]) -> Json:
        """``get_group_member_info``."""
        await self._ready()
        gid = number(params, "group_id")
        uid = number(params, "user_id")
        member = self._replica.book.find_member(self._group(gid), uid=uid)
        if member is None:
            raise ActionError(RETCODE_FAILED, f"member {uid} not found in group {gid}")
        return self.member_info(gid, member)

    async def get_group_member_list(self, params: Mapping[str, Any]) -> list[Json]:
        """``get_group_member_list``."""
        await self._ready()
        gid = number(params, "group_id")
        return [self.member_info(gid, m) for m in self._group(gid).member]

    async def can_send(self, _params: Mapping[str, Any]) -> Json:
        """``can_send_image`` / ``can_send_record``: no, the bus carries text."""
        return {"yes": False}

    async def get_status(self, _params: Mapping[str, Any]) -> Json:
        """``get_status``: online when the account's bridge reports running."""
        online = self._online()
        return {"online": online, "good": online}

    async def get_version_info(self, _params: Mapping[str, Any]) -> Json:
        """``get_version_info``."""
        return {
            "app_name": "openqq-bridge",
            "app_version": __version__,
            "protocol_version": "v11",
            "python_version": platform.python_version(),
        }
