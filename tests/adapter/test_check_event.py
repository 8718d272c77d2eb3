"""check_event: drain-all, long-poll wake-up, timeout, concurrent pollers, recorded events."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec
import pytest

from bridge.adapters.openqq.check_event import EventBuffer
from tests.adapter.conftest import Api
from tests.conftest import api_url, sim_url


async def inject(api: Api, payload: dict[str, Any]) -> None:
    async with api.session.post(sim_url(api.sim, "/sim/inject"), json=payload) as r:
        assert r.status == 200, await r.text()


def group_message(content: str) -> dict[str, Any]:
    return {"type": "group_message", "group_uid": 67890, "sender_uid": 456789, "content": content}


async def wait_buffered(api: Api, n: int) -> None:
    async with asyncio.timeout(5):
        while len(api.adapter.buffer) < n:
            await asyncio.sleep(0.01)


async def test_drain_all_returns_everything_oldest_first(api: Api):
    for i in range(3):
        await inject(api, group_message(f"m{i}"))
    await wait_buffered(api, 3)
    r = await api.get("/openqq/check_event")
    items = msgspec.json.decode(r.body)
    assert [i["content"] for i in items] == ["m0", "m1", "m2"]
    assert r.body.startswith(b'[{"class":"recv","content":"m0","group":"PERL')
    assert len(api.adapter.buffer) == 0


@pytest.mark.parametrize("adapter_options", [{"check_event_timeout": 0.3}])
async def test_long_poll_times_out_with_empty_array(api: Api):
    r = await api.get("/openqq/check_event")
    assert (r.status, r.body) == (200, b"[]")


async def test_long_poll_is_woken_by_the_first_item(api: Api):
    poll = asyncio.create_task(api.get("/openqq/check_event"))
    await asyncio.sleep(0.1)
    assert not poll.done()
    await inject(api, group_message("wake"))
    r = await asyncio.wait_for(poll, 5)
    assert [i["content"] for i in msgspec.json.decode(r.body)] == ["wake"]


async def test_concurrent_pollers_each_get_a_real_item(api: Api):
    polls = [asyncio.create_task(api.get("/openqq/check_event")) for _ in range(2)]
    await asyncio.sleep(0.1)
    await inject(api, group_message("one"))
    await inject(api, group_message("two"))
    bodies = [msgspec.json.decode((await asyncio.wait_for(p, 5)).body) for p in polls]
    assert sorted(b[0]["content"] for b in bodies) == ["one", "two"]
    assert all(len(b) == 1 for b in bodies), "never [null]"


async def test_sent_messages_and_listed_events_are_recorded_not_state_changes(api: Api):
    await api.get("/openqq/send_group_message", uid="67890", content="mine")
    await inject(api, {"type": "new_group_member", "group_uid": 67890, "uid": 4242, "name": "新人"})
    await inject(
        api, {"type": "friend_property_change", "uid": 456789, "property": "markname", "value": "x"}
    )
    await wait_buffered(api, 2)
    await asyncio.sleep(0.1)
    items = msgspec.json.decode(await api.body("/openqq/check_event"))
    assert [(i["post_type"], i.get("type") or i.get("event")) for i in items] == [
        ("send_message", "group_message"),
        ("event", "new_group_member"),
    ]


async def test_slash_and_control_characters_in_legacy_bytes(api: Api):
    await inject(api, group_message("a/b\x01\x1f"))
    await wait_buffered(api, 1)
    body = await api.body("/openqq/check_event")
    assert b'"content":"a\\/b\\u0001\\u001F"' in body


async def test_buffer_keeps_the_newest_and_counts_drops():
    buf = EventBuffer(size=2)
    for i in range(3):
        buf.append(str(i).encode())
    assert await buf.poll(0.01) == [b"1", b"2"]
    assert buf.dropped == 1


async def test_a_poller_that_hung_up_does_not_swallow_an_item():
    buf = EventBuffer(size=5)
    gone = asyncio.create_task(buf.poll(5, alive=lambda: False))
    live = asyncio.create_task(buf.poll(5))
    await asyncio.sleep(0.01)
    buf.append(b"x")
    assert await asyncio.wait_for(live, 1) == [b"x"]
    gone.cancel()
    assert await buf.poll(0.01) == []


async def test_cancelled_poller_returns_its_item_to_the_buffer():
    buf = EventBuffer(size=5)
    task = asyncio.create_task(buf.poll(5))
    await asyncio.sleep(0.01)
    buf.append(b"kept")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await buf.poll(0.01) == [b"kept"]


async def test_check_event_over_a_real_disconnect(api: Api):
    # A client that gives up on its long poll must not take the next item with it.
    timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(TimeoutError):
        async with aiohttp.ClientSession(timeout=timeout) as s:
            await s.get(api_url(api.adapter, "/openqq/check_event"))
    await asyncio.sleep(0.1)
    await inject(api, group_message("after"))
    await wait_buffered(api, 1)
    assert [i["content"] for i in msgspec.json.decode(await api.body("/openqq/check_event"))] == [
        "after"
    ]
