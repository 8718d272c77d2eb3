"""The names of senders and receivers in message reports, as Mojo::Webqq gives them (2.5)."""

from __future__ import annotations

import msgspec

from tests.adapter.conftest import Api
from tests.adapter.test_endpoints import SENT, next_sent
from tests.adapter.test_post_api import inject


async def _check_event(api: Api, type_: str) -> dict:
    items = msgspec.json.decode(await api.body("/openqq/check_event"))
    return next(i for i in items if i.get("type") == type_ and i["post_type"] == "receive_message")


async def test_group_sender_who_is_a_friend_is_named_by_the_markname(api: Api):
    # 测试帐号1: friend markname "xxx", group card "小测" in PERL学习交流.
    event = await inject(
        api,
        {"type": "group_message", "group_uid": 67890, "sender_uid": 1234567, "content": "hi"},
    )
    assert event["sender"] == "xxx"
    assert (await _check_event(api, "group_message"))["sender"] == "xxx"
    # Not a friend: the card, else the nick.
    event = await inject(
        api, {"type": "group_message", "group_uid": 67890, "sender_uid": 88888, "content": "x"}
    )
    assert event["sender"] == "路人甲"


async def test_sess_through_a_group_names_the_account_by_its_card(api: Api):
    event = await inject(
        api,
        {"type": "sess_message", "group_uid": 67890, "sender_uid": 1234567, "content": "hi"},
    )
    assert (event["sender"], event["receiver"]) == ("xxx", "小灰卡")
    assert SENT.fullmatch(
        await api.body("/openqq/send_sess_message", group_uid="67890", uid="1234567", content="x")
    )
    sent = await next_sent(api)
    assert (sent["sender"], sent["receiver"]) == ("小灰卡", "xxx")
