"""Send commands with OneBot segments: validated on the bus, reported in send_message (sim)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from bridge.bus.base import Delivery, OutMessage
from bridge.core import commands as c
from bridge.core.events import Segment
from bridge.core.routing import Names
from tests.conftest import ACCOUNT
from tests.contract.test_bridge_contract import body, call, env, take, until  # noqa: F401

IMAGE = {"type": "image", "data": {"file": "https://x/a.jpg"}}


async def test_sim_send_with_segments_reports_them(env):  # noqa: F811
    segments = [
        Segment(type="image", data={"file": "https://x/a.jpg"}),
        Segment(type="text", data={"text": "look"}),
    ]
    cmd = c.SendGroupMessage(uid=67890, content="[图片]look", segments=segments)
    reply = await call(env, cmd)
    assert (reply["code"], reply["status"]) == (0, "发送成功")
    sent = body(await until(env["events"], lambda b: b.get("post_type") == "send_message"))
    assert sent["content"] == "[图片]look"
    assert sent["segments"] == [IMAGE, {"type": "text", "data": {"text": "look"}}]
    # Without segments the event has none, as before.
    await call(env, c.SendGroupMessage(uid=67890, content="plain"))
    sent = body(await until(env["events"], lambda b: b.get("post_type") == "send_message"))
    assert sent["content"] == "plain"
    assert "segments" not in sent


@pytest.mark.parametrize(
    ("segments", "fragment"),
    [
        ([{"type": "music", "data": {"id": "1"}}], "type 'music' is not one of"),
        ([IMAGE] * (c.MAX_SEGMENTS + 1), "segments"),
        ([{"type": "text", "data": {"text": "x" * (c.MAX_SEGMENT_TEXT + 1)}}], "characters"),
        ([{"type": "text", "data": {str(i): "x" for i in range(17)}}], "data keys"),
        ([{"type": "text", "data": {"text": ["nested"]}}], "segments"),
    ],
)
async def test_invalid_segments_are_refused_and_nothing_is_sent(
    env,  # noqa: F811
    ns,
    segments,
    fragment,
):
    bus = env["bus"]
    reply_q = await bus.declare_queue("", exclusive=True)
    got: asyncio.Queue[Delivery] = asyncio.Queue()

    async def on_reply(d: Delivery) -> None:
        await d.ack()
        await got.put(d)

    await bus.consume(reply_q, on_reply, prefetch=10)
    cmd = {"command": "send_group_message", "uid": 67890, "content": "bad", "segments": segments}
    await bus.publish(
        Names(ns).commands,
        f"send.{ACCOUNT}",
        OutMessage(body=msgspec.json.encode(cmd), reply_to=reply_q, correlation_id="s1"),
        mandatory=True,
    )
    answer = body(await take(got))
    assert answer["code"] == c.CODE_INVALID_COMMAND
    assert "invalid command" in answer["status"]
    assert fragment in answer["status"]
    # Nothing went out: the next send is the first send_message on the bus.
    await call(env, c.SendGroupMessage(uid=67890, content="after"))
    sent = body(await until(env["events"], lambda b: b.get("post_type") == "send_message"))
    assert sent["content"] == "after"
