"""Every /openqq/* endpoint: success and each documented error, byte for byte."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.adapter.conftest import Api

USER = (
    '{"account":123456,"birthday":"1990-1-1","city":"北京","client_type":"web","country":"中国",'
    '"face":0,"id":4072574066,"name":"小灰","province":"北京","sex":"male","signature":"这是我的个性签名",'
    '"state":"online","uid":123456}'
).encode()
FRIENDS = (
    '[{"category":"我的好友","client_type":"pc","face":0,"flag":0,"id":2372835507,"is_vip":0,'
    '"markname":null,"name":"灰灰","state":"online","uid":456789,"vip_level":0},'
    '{"category":"我的网友","client_type":"unknown","face":153,"flag":0,"id":2457053936,"is_vip":1,'
    '"markname":"xxx","name":"测试帐号1","state":"offline","uid":1234567,"vip_level":6},'
    '{"category":"我的家人","client_type":"unknown","face":168,"flag":32,"id":2475249571,"is_vip":0,'
    '"markname":"哈哈","name":"测试帐号2","state":"offline","uid":7891234,"vip_level":0}]'
).encode()
DISCUSS = (
    '[{"id":4118239384,"member":[{"client_type":"unknown","id":"4072574066","name":"小灰",'
    '"state":"online","uid":123456},{"client_type":"unknown","id":"2475249571","name":"哈哈",'
    '"state":"offline","uid":7891234},{"client_type":"unknown","id":"2372835507","name":"灰灰",'
    '"state":"online","uid":456789}],"name":"测试","owner_id":4072574066}]'
).encode()
SENT = re.compile(
    rb'\{"code":0,"id":[0-9]+,"info":"\xe5\x8f\x91\xe9\x80\x81\xe6\xad\xa3\xe5\xb8\xb8","status":"\xe5\x8f\x91\xe9\x80\x81\xe6\x88\x90\xe5\x8a\x9f"\}'
)
ASYNC = b'{"code":0,"status":"request already in execution"}'
OBJECT_NOT_FOUND = b'{"code":100,"status":"object not found"}'
EMPTY = (
    '{"code":-5,"id":null,"info":"消息内容为空 (content is empty)","status":"发送失败"}'.encode()
)


def not_found(code: int, what: str) -> bytes:
    return f'{{"code":{code},"id":null,"status":"{what} not found"}}'.encode()


async def next_sent(api: Api) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            d = await api.events.get()
            b = msgspec.json.decode(d.body)
            if b.get("post_type") == "send_message":
                return b


# --- transport -------------------------------------------------------------------------------


async def test_reads_are_exact_openqq_json(api: Api):
    r = await api.get("/openqq/get_user_info")
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.body == USER
    assert await api.body("/openqq/get_friend_info") == FRIENDS
    assert await api.body("/openqq/get_discuss_info") == DISCUSS
    groups = msgspec.json.decode(await api.body("/openqq/get_group_info"))
    assert [g["uid"] for g in groups] == [67890, 552603]
    assert [m["uid"] for m in groups[0]["member"]] == [45678, 123456, 456789, 1234567, 88888]
    basic = await api.body("/openqq/get_group_basic_info")
    assert b'"member"' not in basic
    assert basic.startswith(b'[{"code":2617047292,"createtime":0,"id":2617047292,"level":0,')


async def test_suffix_and_trailing_slash_route_like_mojolicious(api: Api):
    assert await api.body("/openqq/get_user_info.json") == USER
    assert await api.body("/openqq/get_user_info/") == USER


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/openqq/get_user_info"),
        ("POST", "/openqq/get_group_info"),
        ("POST", "/openqq/relogin"),
        ("GET", "/openqq/send_message"),
        ("GET", "/openwx/send_group_message"),
        ("GET", "/openqq/GET_USER_INFO"),
        ("PUT", "/openqq/send_group_message"),
        ("DELETE", "/openqq/check_event"),
    ],
)
async def test_unknown_paths_and_methods_are_403_api_not_found(api: Api, method, path):
    r = await api.request(method, path)
    assert (r.status, r.body) == (403, b"api not found")
    assert r.headers["Content-Type"] == "text/html;charset=UTF-8"
    assert r.headers["Access-Control-Allow-Origin"] == "*"


async def test_root_is_404(api: Api):
    r = await api.get("/")
    assert r.status == 404
    assert r.headers["Access-Control-Allow-Origin"] == "*"


async def test_options_preflight(api: Api):
    r = await api.request("OPTIONS", "/openqq/send_group_message")
    assert (r.status, r.body) == (200, b"")
    assert r.headers["Access-Control-Allow-Methods"] == "OPTIONS, HEAD, GET, POST"
    assert r.headers["Access-Control-Allow-Headers"] == (
        "X-Requested-With, X-Auth-Token, Content-Type, Content-Length, Authorization"
    )
    assert "Content-Type" not in r.headers


async def test_head_answers_like_get_without_body(api: Api):
    r = await api.request("HEAD", "/openqq/get_user_info")
    assert r.status == 200
    assert r.body == b""


async def test_jsonp(api: Api):
    r = await api.get(
        "/openqq/send_group_message", uid="1", content="x", datatype="jsonp", callback="cb"
    )
    assert r.body == b"cb(" + not_found(101, "group") + b")"
    assert r.headers["Content-Type"] == "application/json"
    r = await api.get("/openqq/get_user_info", datatype="jsonp")
    assert re.fullmatch(rb"jsoncallback[0-9]+\(.*\)", r.body, re.DOTALL)
    # A callback that is not a plain JS name is not echoed (the original allowed XSS).
    r = await api.get("/openqq/get_user_info", datatype="jsonp", callback="alert(1)//")
    assert r.body.startswith(b"jsoncallback")
    r = await api.get("/openqq/nope", datatype="jsonp", callback="cb")
    assert (r.status, r.body) == (403, b"cb(api not found)")


# --- sends -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lookup",
    [
        {"uid": "456789"},
        {"id": "2372835507"},
        {"name": "灰灰"},
        {"displayname": "哈哈"},
        {"id": "2475249571", "uid": "7891234", "name": "测试帐号2", "displayname": "哈哈"},
    ],
)
async def test_send_friend_message(api: Api, lookup):
    r = await api.get("/openqq/send_friend_message", content="你好/", **lookup)
    assert SENT.fullmatch(r.body), r.body
    sent = await next_sent(api)
    assert sent["id"] == msgspec.json.decode(r.body)["id"]
    assert sent["content"] == "你好/"


@pytest.mark.parametrize(
    "query",
    [
        "content=x",
        "uid=456789&id=2457053936&content=x",
        "uid=0456789&content=x",
        "uid=%2B456789&content=x",
        "uid=&content=x",
        "id=&uid=456789&content=x",
        "uid=456789&uid=456789&content=x",
        "name=%E7%81%B0&content=x",
        "displayname=%E6%B5%8B%E8%AF%95%E5%B8%90%E5%8F%B72&content=x",
    ],
)
async def test_send_friend_not_found(api: Api, query):
    r = await api.request("GET", "/openqq/send_friend_message?" + query)
    assert r.body == not_found(100, "friend")


async def test_send_friend_async_and_empty_content(api: Api):
    r = await api.get("/openqq/send_friend_message", uid="456789", content="a", **{"async": "1"})
    assert r.body == ASYNC
    assert (await next_sent(api))["content"] == "a"
    r = await api.get("/openqq/send_friend_message", uid="1", content="a", **{"async": "yes"})
    assert r.body == not_found(100, "friend")
    # async=0 is sync
    r = await api.get("/openqq/send_friend_message", uid="456789", content="b", **{"async": "0"})
    assert SENT.fullmatch(r.body)
    assert await api.body("/openqq/send_friend_message", uid="456789") == EMPTY
    assert (
        await api.body("/openqq/send_friend_message", uid="456789", content="", **{"async": "1"})
        == EMPTY
    )


async def test_send_group_message_get_form_and_multipart(api: Api):
    assert SENT.fullmatch(await api.body("/openqq/send_group_message", uid="67890", content="q"))
    r = await api.request(
        "POST", "/openqq/send_group_message", data={"uid": "67890", "content": "form"}
    )
    assert SENT.fullmatch(r.body)
    form = aiohttp.FormData()
    form.add_field("uid", "552603")
    form.add_field("content", "multi")
    r = await api.request("POST", "/openqq/send_group_message", data=form)
    assert SENT.fullmatch(r.body)
    # Body pairs and query pairs together: the same name twice never matches.
    r = await api.request(
        "POST", "/openqq/send_group_message?uid=67890", data={"uid": "67890", "content": "x"}
    )
    assert r.body == not_found(101, "group")
    # JSON bodies are ignored, as in the original.
    r = await api.request("POST", "/openqq/send_group_message", json={"uid": 67890, "content": "x"})
    assert r.body == not_found(101, "group")
    sent = [await next_sent(api) for _ in range(3)]
    assert [s["content"] for s in sent] == ["q", "form", "multi"]
    assert sent[0]["sender"] == "小灰卡"


async def test_lower_case_percent_encoding_and_plus(api: Api):
    r = await api.request(
        "GET", "/openqq/send_group_message?uid=67890&content=%e4%bd%a0%e5%a5%bd+x%0a"
    )
    assert SENT.fullmatch(r.body)
    assert (await next_sent(api))["content"] == "你好 x\n"


async def test_send_group_by_name_displayname_and_async(api: Api):
    assert SENT.fullmatch(
        await api.body("/openqq/send_group_message", displayname="开发群", content="x")
    )
    assert await api.body("/openqq/send_group_message", name="开发群", content="x") == not_found(
        101, "group"
    )
    assert (
        await api.body("/openqq/send_group_message", uid="67890", content="x", **{"async": "1"})
        == ASYNC
    )


async def test_send_discuss_message(api: Api):
    assert SENT.fullmatch(
        await api.body("/openqq/send_discuss_message", id="4118239384", content="x")
    )
    # async works (the original answered HTTP 500).
    assert (
        await api.body(
            "/openqq/send_discuss_message", id="4118239384", content="y", **{"async": "1"}
        )
        == ASYNC
    )
    assert await api.body("/openqq/send_discuss_message", id="1", content="x") == not_found(
        102, "discuss"
    )
    assert await api.body(
        "/openqq/send_discuss_message", uid="4118239384", content="x"
    ) == not_found(102, "discuss")
    kinds = [(await next_sent(api))["content"] for _ in range(2)]
    assert kinds == ["x", "y"]


async def test_send_sess_message(api: Api):
    # The original hung for every found member; this sends.
    assert SENT.fullmatch(
        await api.body("/openqq/send_sess_message", group_uid="67890", uid="88888", content="x")
    )
    assert SENT.fullmatch(
        await api.body(
            "/openqq/send_sess_message", discuss_id="4118239384", uid="7891234", content="x"
        )
    )
    assert await api.body(
        "/openqq/send_sess_message", group_uid="67890", uid="1", content="x"
    ) == not_found(103, "group member")
    assert await api.body(
        "/openqq/send_sess_message", group_id="", uid="88888", content="x"
    ) == not_found(103, "group member")
    assert await api.body(
        "/openqq/send_sess_message", discuss_id="4118239384", uid="1", content="x"
    ) == not_found(104, "discuss member")
    assert await api.body("/openqq/send_sess_message", uid="88888", content="x") == (
        b'{"code":105,"id":null,"status":"discuss member or group member  not found"}'
    )
    sess = await next_sent(api)
    assert (sess["type"], sess["via"], sess["receiver_uid"]) == ("sess_message", "group", 88888)


# --- search ----------------------------------------------------------------------------------


async def test_search_friend(api: Api):
    found = msgspec.json.decode(await api.body("/openqq/search_friend", markname="哈哈"))
    assert [f["uid"] for f in found] == [7891234]
    found = msgspec.json.decode(
        await api.body("/openqq/search_friend", state="offline", type="friend")
    )
    assert [f["uid"] for f in found] == [1234567, 7891234]
    assert [
        f["uid"]
        for f in msgspec.json.decode(
            await api.body("/openqq/search_friend", qq="456789", nick="灰灰")
        )
    ] == [456789]
    assert await api.body("/openqq/search_friend") == OBJECT_NOT_FOUND
    assert await api.body("/openqq/search_friend", uid="1") == OBJECT_NOT_FOUND
    # Unknown attributes find nothing (the original died with a 500).
    assert await api.body("/openqq/search_friend", uid="456789", foo="1") == OBJECT_NOT_FOUND
    assert await api.body("/openqq/search_friend", type="group") == OBJECT_NOT_FOUND
    # Transport parameters are not criteria (the original died on datatype/callback).
    r = await api.get("/openqq/search_friend", uid="456789", datatype="jsonp", callback="f", _="1")
    assert r.body.startswith(b'f([{"category":"') and r.body.endswith(b"])")
    # Later duplicates overwrite earlier ones.
    r = await api.request("GET", "/openqq/search_friend?uid=1&uid=456789")
    assert b'"uid":456789' in r.body


async def test_search_group(api: Api):
    found = msgspec.json.decode(await api.body("/openqq/search_group", uid="67890"))
    assert [g["uid"] for g in found] == [67890]
    assert len(found[0]["member"]) == 5
    assert (
        msgspec.json.decode(await api.body("/openqq/search_group", gnumber="552603", member="x"))[
            0
        ]["name"]
        == "Mojo-Webqq开发"
    )
    assert (
        msgspec.json.decode(await api.body("/openqq/search_group", gtype="create"))[0]["uid"]
        == 552603
    )
    assert (
        msgspec.json.decode(await api.body("/openqq/search_group", displayname="开发群"))[0]["uid"]
        == 552603
    )
    assert await api.body("/openqq/search_group", zzz="1") == OBJECT_NOT_FOUND
    assert await api.body("/openqq/search_group") == OBJECT_NOT_FOUND


# --- kick and shutup -------------------------------------------------------------------------


async def test_kick_group_member(api: Api):
    assert await api.body("/openqq/kick_group_member", group_uid="67890", member_uid="88888") == (
        b'{"code":0,"status":"success"}'
    )
    groups = msgspec.json.decode(await api.body("/openqq/get_group_info"))
    assert 88888 not in [m["uid"] for m in groups[0]["member"]]


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("member_uid=88888", OBJECT_NOT_FOUND),
        ("group_uid=1&member_uid=88888", OBJECT_NOT_FOUND),
        ("group_uid=abc&member_uid=88888", OBJECT_NOT_FOUND),
        ("group_uid=1&member_uid=abc", OBJECT_NOT_FOUND),
        ("group_uid=67890", b'{"code":200,"status":"member id empty"}'),
        ("group_uid=67890&member_uid=", b'{"code":200,"status":"member id empty"}'),
        ("group_uid=67890&member_id=&member_uid=88888", b'{"code":200,"status":"member id empty"}'),
        ("group_uid=67890&member_uid=88888,999", b'{"code":100,"status":"member 999 not found"}'),
        ("group_uid=67890&member_uid=abc", b'{"code":100,"status":"member abc not found"}'),
        ("group_uid=67890&member_uid=88888,,1", b'{"code":100,"status":"member  not found"}'),
        ("group_uid=67890&member_uid=45678", b'{"code":201,"status":"failure"}'),
        ("group_id=2617047292&group_uid=552603&member_uid=88888", OBJECT_NOT_FOUND),
    ],
)
async def test_kick_errors(api: Api, query, body):
    r = await api.request("GET", "/openqq/kick_group_member?" + query)
    assert r.body == body


async def test_shutup_takes_seconds_with_default_60(api: Api):
    ok = b'{"code":0,"status":"success"}'
    assert (
        await api.body("/openqq/shutup_group_member", group_uid="67890", member_uid="88888") == ok
    )
    assert (
        await api.body(
            "/openqq/shutup_group_member", group_uid="67890", member_uid="88888", time="120"
        )
        == ok
    )
    seconds: list[int] = []
    async with asyncio.timeout(5):
        while len(seconds) < 2:
            b = msgspec.json.decode((await api.events.get()).body)
            if b.get("event") == "group_member_shutup":
                seconds.append(b["params"][2])
    assert seconds == [60, 120]


@pytest.mark.parametrize(
    ("query", "body"),
    [
        (
            "group_uid=67890&member_uid=88888&time=30",
            b'{"code":400,"status":"shutup time missing or error"}',
        ),
        (
            "group_uid=67890&member_uid=88888&time=1m",
            b'{"code":400,"status":"shutup time missing or error"}',
        ),
        (
            "group_uid=67890&member_uid=88888&time=99999999999",
            b'{"code":400,"status":"shutup time missing or error"}',
        ),
        ("group_uid=1&member_uid=88888&time=x", OBJECT_NOT_FOUND),
        ("group_uid=67890&member_uid=123456&time=60", b'{"code":201,"status":"failure"}'),
        ("group_uid=67890&time=60", b'{"code":200,"status":"member id empty"}'),
        ("group_uid=67890&member_id=1&time=60", b'{"code":100,"status":"member 1 not found"}'),
    ],
)
async def test_shutup_errors(api: Api, query, body):
    r = await api.request("GET", "/openqq/shutup_group_member?" + query)
    assert r.body == body


@pytest.mark.parametrize("adapter_options", [{"shutup_unit": "minutes"}])
async def test_shutup_in_minutes_when_configured(api: Api):
    missing = b'{"code":400,"status":"shutup time missing or error"}'
    assert (
        await api.body("/openqq/shutup_group_member", group_uid="67890", member_uid="88888")
        == missing
    )
    assert await api.body(
        "/openqq/shutup_group_member", group_uid="67890", member_uid="88888", time="2"
    ) == (b'{"code":0,"status":"success"}')
    async with asyncio.timeout(5):
        while True:
            b = msgspec.json.decode((await api.events.get()).body)
            if b.get("event") == "group_member_shutup":
                assert b["params"][2] == 120
                break


# --- control ---------------------------------------------------------------------------------


async def test_get_client_info_and_relogin(api: Api):
    info = msgspec.json.decode(await api.body("/openqq/get_client_info"))
    assert info["account"] == "default"
    assert list(info) == sorted(info)
    r = await api.request("POST", "/openqq/get_client_info")
    assert r.status == 200
    assert (await api.request("POST", "/openqq/relogin")).status == 403
    relogin = await api.body("/openqq/relogin")
    assert re.fullmatch(
        rb'\{"account":"default","code":0,"status":"success, client\([0-9]+\) will relogin in 3 seconds"\}',
        relogin,
    )


async def test_stop_client_stops_the_bridge(api: Api):
    body = await api.body("/openqq/stop_client")
    assert re.fullmatch(
        rb'\{"account":"default","code":0,"pid":[0-9]+,"runtime":[0-9]+,"starttime":[0-9]+,'
        rb'"status":"success, client\([0-9]+\) will stop in 3 seconds"\}',
        body,
    )
    async with asyncio.timeout(5):
        await api.bridge.stop_requested.wait()


# --- auth and limits -------------------------------------------------------------------------


@pytest.mark.parametrize("adapter_options", [{"access_token": "s3cret"}])
async def test_access_token(api: Api):
    failure = b'{"code":-6,"status":"auth failure"}'
    r = await api.get("/openqq/get_user_info")
    assert (r.status, r.body) == (200, failure)
    assert await api.body("/openqq/get_user_info", access_token="wrong") == failure
    assert await api.body("/openqq/get_user_info", access_token="s3cret") == USER
    r = await api.request(
        "GET", "/openqq/get_user_info", headers={"Authorization": "Bearer s3cret"}
    )
    assert r.body == USER
    r = await api.request("GET", "/openqq/get_user_info", headers={"Authorization": "Bearer s3cre"})
    assert r.body == failure
    # Before every route: OPTIONS and unknown paths too.
    assert (await api.request("OPTIONS", "/openqq/x")).body == failure
    assert (await api.get("/openqq/nope")).body == failure
    # Control needs the token like everything else.
    assert (await api.get("/openqq/stop_client")).body == failure
    assert not api.bridge.stop_requested.is_set()
    # The token is not a search criterion.
    found = await api.body("/openqq/search_friend", uid="456789", access_token="s3cret")
    assert found.startswith(b"[")


@pytest.mark.parametrize("adapter_options", [{"max_request_bytes": 4096}])
async def test_oversized_body_is_refused_not_crashed(api: Api):
    r = await api.request(
        "POST", "/openqq/send_group_message", data={"uid": "67890", "content": "x" * 10000}
    )
    assert r.status == 413
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    many = "&".join(f"k{i}=" for i in range(1200))
    r = await api.request("GET", "/openqq/send_group_message?" + many)
    assert r.status == 400
    assert b"more than 1000 parameters" in r.body
