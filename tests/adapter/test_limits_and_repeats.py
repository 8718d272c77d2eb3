"""Bus limits and repeated parameters, answered as the original answers them (issue 9: 2.3, 2.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from bridge.bus.base import Delivery
from bridge.core import commands as c
from bridge.core.routing import Names
from tests.adapter.conftest import Api
from tests.adapter.test_endpoints import ASYNC, OBJECT_NOT_FOUND, SENT, next_sent, not_found

LONG = "x" * 20_000
TOO_LONG = (
    '{"code":-5,"id":null,"info":"content too long: 20000 characters, at most 16384",'
    '"status":"发送失败"}'
).encode()


async def _tap(api: Api, exchange: str) -> asyncio.Queue[Delivery]:
    got: asyncio.Queue[Delivery] = asyncio.Queue()
    q = await api.bus.declare_queue("", exclusive=True)
    await api.bus.bind(q, exchange, "#")

    async def on(d: Delivery) -> None:
        await d.ack()
        await got.put(d)

    await api.bus.consume(q, on, prefetch=1000)
    return got


async def _until_marker(commands: asyncio.Queue[Delivery]) -> list[dict[str, Any]]:
    """Every command published before the marker send (published last)."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while True:
            body = msgspec.json.decode((await commands.get()).body)
            if body.get("content") == "marker":
                return seen
            seen.append(body)


async def test_content_over_the_bus_limit_is_answered_and_never_queued(api: Api, ns):
    names = Names(ns)
    commands = await _tap(api, names.commands)
    dead = await _tap(api, names.dead)
    send = "/openqq/send_group_message"
    for extra in ({}, {"async": "1"}):
        # Not-found first, as the original; then 发送失败 with what is too long.
        assert await api.body(send, uid="1", content=LONG, **extra) == not_found(101, "group")
        assert await api.body(send, uid="67890", content=LONG, **extra) == TOO_LONG
    friend = "/openqq/send_friend_message"
    form = {"uid": "456789", "content": "长" * 20_000, "async": "1"}
    assert (await api.request("POST", friend, data=form)).body == TOO_LONG
    discuss = "/openqq/send_discuss_message"
    assert await api.body(discuss, id="4118239384", content=LONG) == TOO_LONG
    assert await api.body(discuss, id="1", content=LONG) == not_found(102, "discuss")
    sess = "/openqq/send_sess_message"
    assert await api.body(sess, group_uid="67890", uid="88888", content=LONG) == TOO_LONG
    assert await api.body(sess, group_uid="67890", uid="1", content=LONG) == not_found(
        103, "group member"
    )
    # Exactly at the limit it is sent.
    at_limit = "x" * c.MAX_CONTENT
    assert SENT.fullmatch(await api.body(send, uid="67890", content=at_limit))
    assert (await next_sent(api))["content"] == at_limit
    assert SENT.fullmatch(await api.body(send, uid="67890", content="marker"))
    published = await _until_marker(commands)
    assert all(len(p.get("content", "")) <= c.MAX_CONTENT for p in published)
    assert dead.empty()


async def test_names_over_the_bus_limit_never_match(api: Api):
    long_name = "群" * (c.MAX_NAME + 1)
    send = "/openqq/send_group_message"
    assert await api.body(send, name=long_name, content="x") == not_found(101, "group")
    assert await api.body(send, displayname=long_name, content="x", **{"async": "1"}) == (
        not_found(101, "group")
    )


async def test_more_members_than_a_command_carries(api: Api):
    members = ",".join(str(10000 + i) for i in range(c.MAX_MEMBERS + 1))
    kick = "/openqq/kick_group_member"
    assert await api.body(kick, group_uid="1", member_uid=members) == OBJECT_NOT_FOUND
    assert await api.body(kick, group_uid="67890", member_uid=members) == (
        b'{"code":201,"status":"failure: 2001 members, at most 2000 per request"}'
    )


# --- repeated parameters ----------------------------------------------------------------------


async def _member_uids(api: Api) -> list[int]:
    groups = msgspec.json.decode(await api.body("/openqq/get_group_info"))
    group = next(g for g in groups if g["uid"] == 67890)
    return [m["uid"] for m in group["member"]]


@pytest.mark.parametrize("endpoint", ["kick_group_member", "shutup_group_member"])
async def test_a_member_parameter_given_twice_touches_nobody(api: Api, endpoint):
    before = await _member_uids(api)
    r = await api.request(
        "GET", f"/openqq/{endpoint}?group_uid=67890&member_uid=88888&member_uid=45678&time=60"
    )
    assert r.body == b'{"code":100,"status":"member 88888,45678 not found"}'
    assert await _member_uids(api) == before
    # An unknown group still wins, as in the original.
    r = await api.request(
        "GET", f"/openqq/{endpoint}?group_uid=1&member_uid=88888&member_uid=45678&time=60"
    )
    assert r.body == OBJECT_NOT_FOUND


@pytest.mark.parametrize("adapter_options", [{}, {"shutup_unit": "minutes"}])
async def test_shutup_time_given_twice_is_an_error(api: Api):
    r = await api.request(
        "GET", "/openqq/shutup_group_member?group_uid=67890&member_uid=88888&time=120&time=180"
    )
    assert r.body == b'{"code":400,"status":"shutup time missing or error"}'


async def test_async_given_twice_is_async_as_in_perl(api: Api):
    r = await api.request(
        "GET", "/openqq/send_group_message?uid=67890&content=twice&async=1&async=0"
    )
    assert r.body == ASYNC
    assert (await next_sent(api))["content"] == "twice"


async def test_content_given_twice_is_refused_after_the_lookup(api: Api):
    r = await api.request("GET", "/openqq/send_group_message?uid=67890&content=a&content=b")
    assert (
        r.body
        == (
            '{"code":-5,"id":null,"info":"content 参数重复 (content given twice)","status":"发送失败"}'
        ).encode()
    )
    r = await api.request("GET", "/openqq/send_group_message?uid=1&content=a&content=b")
    assert r.body == not_found(101, "group")


@pytest.mark.parametrize("adapter_options", [{"shutup_unit": "minutes"}])
async def test_shutup_minutes_edges(api: Api):
    shutup = "/openqq/shutup_group_member"
    # Under a minute: QQ refuses (201), after the member checks, as the original.
    assert await api.body(shutup, group_uid="67890", member_uid="88888", time="0") == (
        b'{"code":201,"status":"failure"}'
    )
    assert await api.body(shutup, group_uid="67890", member_uid="abc", time="0") == (
        b'{"code":100,"status":"member abc not found"}'
    )
    assert await api.body(shutup, group_uid="67890", member_uid="88888", time="43201") == (
        b'{"code":201,"status":"failure: at most 43200 minutes (30 days)"}'
    )


# --- method names the original's searches compare (2.6) ---------------------------------------


async def _uids(api: Api, path: str, **params: str) -> list[int] | bytes:
    body = await api.body(path, **params)
    return body if body == OBJECT_NOT_FOUND else [o["uid"] for o in msgspec.json.decode(body)]


async def test_search_group_compares_type_number_and_member_count(api: Api):
    group = "/openqq/search_group"
    assert await _uids(api, group, type="group") == [67890, 552603]
    assert await _uids(api, group, type="friend") == OBJECT_NOT_FOUND
    assert await _uids(api, group, number="552603") == [552603]
    assert await _uids(api, group, member_count="5") == [67890]
    assert await _uids(api, group, gmember_count="3", type="group") == [552603]
    assert await _uids(api, group, member_count="4") == OBJECT_NOT_FOUND


async def test_search_friend_type_friend_matches_every_friend(api: Api):
    friend = "/openqq/search_friend"
    assert await _uids(api, friend, type="friend") == [456789, 1234567, 7891234]
    assert await _uids(api, friend, type="group") == OBJECT_NOT_FOUND


async def test_user_account_is_a_number(api: Api):
    user = msgspec.json.decode(await api.body("/openqq/get_user_info"))
    assert user["account"] == 123456
