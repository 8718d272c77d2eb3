"""Handlers of every ``/openqq/*`` endpoint, with the behaviour of reference/openqq-spec.md §2.

Each handler turns legacy parameters into a bus command (or a replica read) and answers with
the exact Openqq JSON. Parameters that can never match (given twice, empty, an id that is not
a plain decimal number) are answered "not found" here, without a trip to the bridge.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from bridge.adapters.openqq.context import ApiContext
from bridge.adapters.openqq.jsonfmt import dumps
from bridge.adapters.openqq.params import Params, last, qq, single, truthy
from bridge.core import commands as c
from bridge.core.model import Friend, GroupBasic, basic

JSON = "application/json"
ASYNC_OK = dumps(c.StatusReply(code=0, status="request already in execution"))
NOT_FOUND_OBJECT = dumps(c.StatusReply(code=100, status="object not found"))
AUTH_FAILURE = dumps(c.StatusReply(code=-6, status="auth failure"))
SHUTUP_TIME_ERROR = dumps(c.StatusReply(code=400, status="shutup time missing or error"))
#: Parameters that steer the transport, never search criteria.
TRANSPORT_PARAMS = frozenset({"datatype", "callback", "_", "access_token", "client", "async"})
FRIEND_SEARCH = frozenset(Friend.__struct_fields__) | {"displayname"}
GROUP_SEARCH = frozenset(GroupBasic.__struct_fields__) | {"displayname", "member_count"}
#: The original sent the text of a Perl list reference; this says what is wrong instead.
CONTENT_TWICE = "content 参数重复 (content given twice)"
LOOKUP = ("id", "uid", "name", "displayname")
NUMERIC = frozenset({"id", "uid", "group_id", "group_uid", "discuss_id"})
_DIGITS = re.compile(r"[0-9]{1,12}")


#: Answers of lists holding more members than this are written a group at a time (about 4 MB).
STREAM_MEMBERS = 20_000


@dataclass(slots=True)
class Answer:
    """A rendered response before JSONP wrapping.

    ``items``, when set, is a JSON array too big to hold encoded at once (a full
    get_group_info of a million members is 200 MB): the app writes it one item at a time.
    """

    body: bytes = b""
    content_type: str = JSON
    status: int = 200
    items: Sequence[object] | None = None


Handler = Callable[[ApiContext, Params, web.Request], Awaitable[Answer]]
ROUTES: dict[str, tuple[frozenset[str], Handler]] = {}


def route(name: str, *, post: bool = True) -> Callable[[Handler], Handler]:
    """Register a handler for ``/openqq/<name>`` (GET and HEAD, and POST unless told)."""
    methods = frozenset({"GET", "HEAD", "POST"} if post else {"GET", "HEAD"})

    def register(fn: Handler) -> Handler:
        ROUTES[name] = (methods, fn)
        return fn

    return register


def _status(code: int, status: str) -> Answer:
    return Answer(dumps(c.StatusReply(code=code, status=status)))


def _send_failed(info: str) -> Answer:
    return Answer(dumps(c.send_failure(info)))


def _unsendable(params: Params, content: str) -> str | None:
    """Why the content cannot be sent as given, checked after the target is found."""
    if _repeated(params, "content"):
        return CONTENT_TWICE
    if len(content) > c.MAX_CONTENT:
        return f"content too long: {len(content)} characters, at most {c.MAX_CONTENT}"
    return None


async def _refuse_after_lookup(api: ApiContext, probe: c.Command, info: str) -> Answer:
    """发送失败 with ``info`` if the target exists, else the original's not-found answer."""
    # The same send without content looks the target up and cannot send anything: the bridge
    # answers not-found, or that the content is empty (then the target exists).
    body = await api.call(probe)
    try:
        reply = msgspec.json.decode(body, type=c.SendReply)
    except msgspec.DecodeError:
        return Answer(body)
    if reply.id is None and reply.info == c.EMPTY_CONTENT:
        return _send_failed(info)
    return Answer(body)


def _not_found(code: int, what: str) -> Answer:
    return Answer(dumps(c.SendReply(code=code, id=None, status=f"{what} not found")))


def _lookup(
    params: Params, names: tuple[str, ...], rename: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """Lookup criteria from the given parameters; None when one can never match."""
    crit: dict[str, Any] = {}
    for name in names:
        if name not in params:
            continue
        value = single(params, name)
        key = (rename or {}).get(name, name)
        if value is None:
            return None  # given twice: the original compares a list, which never matches
        if len(value) > c.MAX_NAME:
            return None  # no QQ name is that long, and the bus carries none longer
        if name in NUMERIC:
            number = qq(value)
            if number is None:
                return None
            crit[key] = number
        else:
            crit[key] = value
    return crit or None


def _repeated(params: Params, name: str) -> bool:
    return len(params.get(name, ())) > 1


def _asynchronous(params: Params) -> bool:
    # Given twice, the original's ``async`` is a list: true in Perl, whatever the values.
    return _repeated(params, "async") or truthy(last(params, "async"))


def _split_members(raw: str) -> list[str]:
    # Perl's split /,/: inner empty fields stay, trailing ones go.
    parts = raw.split(",")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


# --- reads ---------------------------------------------------------------------------------


async def _read(api: ApiContext, cmd: c.Command, local: Callable[[], object]) -> Answer:
    if api.replica.ready.is_set():
        return Answer(api.replica.answer(c.command_name(cmd), lambda: dumps(local())))
    return Answer(await api.call(cmd))


@route("get_user_info", post=False)
async def get_user_info(api: ApiContext, _p: Params, _r: web.Request) -> Answer:
    """The logged-in user."""
    return await _read(api, c.GetUserInfo(), lambda: api.replica.book.user)


@route("get_friend_info", post=False)
async def get_friend_info(api: ApiContext, _p: Params, _r: web.Request) -> Answer:
    """Every friend."""
    return await _read(api, c.GetFriendInfo(), lambda: api.replica.book.friends)


@route("get_group_info", post=False)
async def get_group_info(api: ApiContext, _p: Params, _r: web.Request) -> Answer:
    """Every group with its members; a big book is written a group at a time (memory)."""
    # The whole book in one reply from the bridge is refused by the broker past its message
    # limit: while the replica loads (right after a start), wait for it instead.
    if await api.replica.loaded(api.opts.rpc_timeout):
        groups = api.replica.book.groups
        if sum(len(g.member) for g in groups) > STREAM_MEMBERS:
            return Answer(items=groups)
        return Answer(dumps(groups))
    return Answer(await api.call(c.GetGroupInfo()))


@route("get_group_basic_info", post=False)
async def get_group_basic_info(api: ApiContext, _p: Params, _r: web.Request) -> Answer:
    """Every group without members."""
    return await _read(
        api, c.GetGroupBasicInfo(), lambda: [basic(g) for g in api.replica.book.groups]
    )


@route("get_discuss_info", post=False)
async def get_discuss_info(api: ApiContext, _p: Params, _r: web.Request) -> Answer:
    """Every discuss group with its members."""
    return await _read(api, c.GetDiscussInfo(), lambda: api.replica.book.discusses)


def _criteria(
    params: Params, allowed: frozenset[str], aliases: dict[str, str]
) -> dict[str, str] | None:
    """Search criteria (maybe none); None when one names no attribute at all."""
    crit: dict[str, str] = {}
    for name, values in params.items():
        if name in TRANSPORT_PARAMS:
            continue
        key = aliases.get(name, name)
        if key not in allowed:
            return None  # nothing has that attribute (the original died here with a 500)
        crit[key] = values[-1]  # later duplicates overwrite earlier ones
    return crit


def _kind_matches(params: dict[str, list[str]], kind: str) -> bool | None:
    """Pop ``type`` (the original's method naming the object kind): None if absent."""
    given = params.pop("type", None)
    return None if given is None else given[-1] == kind


async def _search(
    api: ApiContext,
    crit: dict[str, str] | None,
    kind: bool | None,
    local: Callable[[dict[str, str]], list[Any]],
    every: Callable[[], list[Any]],
    remote: c.Command,
) -> Answer:
    # ``type`` alone (of the right kind) matches every object, as in the original.
    if crit is None or kind is False or not (crit or kind):
        return Answer(NOT_FOUND_OBJECT)
    if api.replica.ready.is_set():
        found = local(crit) if crit else every()
        return Answer(dumps(found) if found else NOT_FOUND_OBJECT)
    return Answer(await api.call(remote))


@route("search_friend")
async def search_friend(api: ApiContext, params: Params, _r: web.Request) -> Answer:
    """Friends whose given attributes all equal the given values."""
    params = dict(params)
    kind = _kind_matches(params, "friend")
    crit = _criteria(params, FRIEND_SEARCH, {"nick": "name", "qq": "uid"})
    book = api.replica.book
    remote = c.SearchFriend(**crit) if crit else c.GetFriendInfo()
    return await _search(api, crit, kind, book.search_friends, lambda: book.friends, remote)


@route("search_group")
async def search_group(api: ApiContext, params: Params, _r: web.Request) -> Answer:
    """Groups whose given attributes all equal the given values (``member`` is ignored)."""
    params = {k: v for k, v in params.items() if k != "member"}
    kind = _kind_matches(params, "group")
    # ``number`` is the original's method for the group number.
    aliases = {"gnumber": "uid", "gtype": "role", "number": "uid"}
    aliases |= {f"g{f}": f for f in GROUP_SEARCH if f"g{f}" not in GROUP_SEARCH}
    crit = _criteria(params, GROUP_SEARCH, aliases)
    book = api.replica.book
    remote = c.SearchGroup(**crit) if crit else c.GetGroupInfo()
    return await _search(api, crit, kind, book.search_groups, lambda: book.groups, remote)


# --- sends ---------------------------------------------------------------------------------


async def _send(
    api: ApiContext,
    params: Params,
    cmd_type: type[c.SendFriendMessage] | type[c.SendGroupMessage] | type[c.SendDiscussMessage],
    names: tuple[str, ...],
    code: int,
    what: str,
) -> Answer:
    crit = _lookup(params, names)
    if crit is None:
        return _not_found(code, what)
    content = last(params, "content") or ""
    refusal = _unsendable(params, content)
    if refusal is not None:
        return await _refuse_after_lookup(api, cmd_type(**crit, content=""), refusal)
    if not _asynchronous(params):
        return Answer(await api.call(cmd_type(**crit, content=content)))
    if not content:
        # The original answered "in execution" and then sent nothing; say so instead.
        return _send_failed(c.EMPTY_CONTENT)
    if not api.replica.ready.is_set():
        # No replica yet to check the target: ask the bridge, answer in the async shape.
        body = await api.call(cmd_type(**crit, content=content))
        return Answer(body if b'"id":null' in body else ASYNC_OK)
    book = api.replica.book
    finder = {
        c.SendFriendMessage: book.find_friend,
        c.SendGroupMessage: book.find_group,
        c.SendDiscussMessage: book.find_discuss,
    }[cmd_type]
    target = finder(**crit)
    if target is None:
        return _not_found(code, what)
    # By id: the bridge sends to exactly the contact found here.
    failed = await api.cast(cmd_type(id=target.id, content=content))
    return Answer(failed or ASYNC_OK)


@route("send_friend_message")
async def send_friend_message(api: ApiContext, params: Params, _r: web.Request) -> Answer:
    """Send to a friend by id, uid, name, displayname; ``async`` answers at once."""
    return await _send(api, params, c.SendFriendMessage, LOOKUP, 100, "friend")


@route("send_group_message")
async def send_group_message(api: ApiContext, params: Params, _r: web.Request) -> Answer:
    """Send to a group by id, uid, name, displayname; ``async`` answers at once."""
    return await _send(api, params, c.SendGroupMessage, LOOKUP, 101, "group")


@route("send_discuss_message")
async def send_discuss_message(api: ApiContext, params: Params, _r: web.Request) -> Answer:
    """Send to a discuss group by id; ``async`` works (the original died with a 500)."""
    return await _send(api, params, c.SendDiscussMessage, ("id",), 102, "discuss")


@route("send_sess_message")
async def send_sess_message(api: ApiContext, params: Params, _r: web.Request) -> Answer:
    """Temporary chat with a group or discuss member (the original hung; this answers)."""
    content = last(params, "content") or ""
    member = _lookup(params, ("id", "uid"))
    if "group_id" in params or "group_uid" in params:
        group = _lookup(params, ("group_id", "group_uid"))
        if group is None or member is None:
            return _not_found(103, "group member")
        cmd: c.Command = c.SendSessMessage(
            group_id=group.get("group_id"),
            group_uid=group.get("group_uid"),
            content=content,
            **member,
        )
    elif "discuss_id" in params:
        discuss = _lookup(params, ("discuss_id",))
        if discuss is None or member is None:
            return _not_found(104, "discuss member")
        cmd = c.SendSessMessage(discuss_id=discuss["discuss_id"], content=content, **member)
    else:
        return _not_found(105, "discuss member or group member ")
    refusal = _unsendable(params, content)
    if refusal is not None:
        return await _refuse_after_lookup(api, msgspec.structs.replace(cmd, content=""), refusal)
    return Answer(await api.call(cmd))


# --- group management ----------------------------------------------------------------------


async def _manage(api: ApiContext, params: Params, shutup: bool) -> Answer:
    group = _lookup(params, ("group_id", "group_uid"), {"group_id": "id", "group_uid": "uid"})
    if group is None:
        return Answer(NOT_FOUND_OBJECT)
    seconds = 0
    refusal: str | None = None
    if shutup:
        if _repeated(params, "time"):
            # The original reads a list, which is not digits.
            return await _after_group(api, group, Answer(SHUTUP_TIME_ERROR))
        raw = last(params, "time")
        if api.opts.shutup_unit == "seconds":
            # Seed document: seconds, at least 60, 60 when not given.
            if raw is None:
                raw = "60"
            if not _DIGITS.fullmatch(raw) or not 60 <= int(raw) <= c.MAX_SHUTUP_SECONDS:
                return await _after_group(api, group, Answer(SHUTUP_TIME_ERROR))
            seconds = int(raw)
        else:
            # Later Mojo::Webqq: minutes, required; QQ refuses under a minute (201, after the
            # member checks, as the original). The bus carries at most 30 days.
            if raw is None or not _DIGITS.fullmatch(raw):
                return await _after_group(api, group, Answer(SHUTUP_TIME_ERROR))
            seconds = int(raw) * 60
            if seconds < 60:
                refusal = "failure"
            elif seconds > c.MAX_SHUTUP_SECONDS:
                refusal = f"failure: at most {c.MAX_SHUTUP_SECONDS // 60} minutes (30 days)"
    field = "member_id" if "member_id" in params else "member_uid"
    if _repeated(params, field):
        # The original reads a list and finds no member of that name: nobody is touched.
        status = f"member {','.join(params[field])} not found"
        return await _after_group(api, group, _status(100, status))
    values = _split_members(last(params, field) or "")
    if not values:
        return await _after_group(api, group, _status(200, "member id empty"))
    numbers = []
    for value in values:
        number = qq(value)
        if number is None:
            answer = _status(100, f"member {value} not found")
            return await _after_group(api, group, answer)
        numbers.append(number)
    if len(numbers) > c.MAX_MEMBERS:
        status = f"failure: {len(numbers)} members, at most {c.MAX_MEMBERS} per request"
        return await _after_group(api, group, _status(201, status))
    if refusal is not None:
        return await _after_group(api, group, _status(201, refusal))
    by_id = field == "member_id"
    gid, guid = group.get("id"), group.get("uid")
    cmd: c.Command
    if shutup:
        cmd = c.ShutupGroupMember(
            group_id=gid,
            group_uid=guid,
            member_id=numbers if by_id else None,
            member_uid=None if by_id else numbers,
            time=seconds,
        )
    else:
        cmd = c.KickGroupMember(
            group_id=gid,
            group_uid=guid,
            member_id=numbers if by_id else None,
            member_uid=None if by_id else numbers,
        )
    return Answer(await api.call(cmd))


async def _after_group(api: ApiContext, group: dict[str, Any], answer: Answer) -> Answer:
    # The original looks the group up first: an unknown group wins over any other error.
    return answer if await api.group_exists(group) else Answer(NOT_FOUND_OBJECT)


@route("kick_group_member")
async def kick_group_member(api: ApiContext, params: Params, _r: web.Request) -> Answer:
    """Remove members (comma-separated member_id or member_uid) from a group."""
    return await _manage(api, params, shutup=False)


@route("shutup_group_member")
async def shutup_group_member(api: ApiContext, params: Params, _r: web.Request) -> Answer:
    """Mute members for ``time`` (seconds by default; setting shutup_unit)."""
    return await _manage(api, params, shutup=True)


# --- events and control --------------------------------------------------------------------


@route("check_event")
async def check_event(api: ApiContext, _p: Params, request: web.Request) -> Answer:
    """Everything waiting, or a long poll for the next item, or ``[]``."""
    transport = request.transport

    def alive() -> bool:
        return transport is not None and not transport.is_closing()

    items = await api.buffer.poll(api.opts.check_event_timeout, alive)
    return Answer(b"[" + b",".join(items) + b"]")


@route("get_client_info")
async def get_client_info(api: ApiContext, _p: Params, _r: web.Request) -> Answer:
    """The bridge's process information."""
    return Answer(await api.call(c.GetClientInfo()))


@route("stop_client")
async def stop_client(api: ApiContext, _p: Params, _r: web.Request) -> Answer:
    """Stop the bridge in 3 seconds."""
    return Answer(await api.call(c.StopClient()))


@route("relogin", post=False)
async def relogin(api: ApiContext, _p: Params, _r: web.Request) -> Answer:
    """Log the account in again in 3 seconds."""
    return Answer(await api.call(c.Relogin()))
