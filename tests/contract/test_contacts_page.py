"""get_contacts_page on the bus: the bridge answers pages that add up to the whole lists."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from bridge.bus.base import Delivery, OutMessage
from bridge.bus.rpc import RpcClient
from bridge.core import commands as c
from bridge.core.routing import Names
from bridge.store import SqliteRecord
from tests.conftest import ACCOUNT, running_bridge


async def rpc_for(bus_factory, ns: str) -> RpcClient:
    rpc = RpcClient(await bus_factory(), Names(ns))
    await rpc.start()
    return rpc


async def ask(rpc: RpcClient, cmd: c.Command, message_id: str | None = None) -> Any:
    return msgspec.json.decode(await rpc.call(ACCOUNT, cmd, timeout=5, message_id=message_id))


async def every_page(rpc: RpcClient, kind: c.ContactKind, budget: int) -> list[Any]:
    items: list[Any] = []
    after = 0
    while True:
        page = await ask(rpc, c.GetContactsPage(kind=kind, after=after, max_entries=budget))
        assert page["kind"] == kind
        items += page["items"]
        if page["next"] is None:
            return items
        after = page["next"]


async def test_pages_add_up_to_the_whole_lists(bus_factory, ns, tmp_path):
    async with running_bridge(await bus_factory(), ns, tmp_path):
        rpc = await rpc_for(bus_factory, ns)
        assert await every_page(rpc, "friend", 1) == await ask(rpc, c.GetFriendInfo())
        assert await every_page(rpc, "group", 2) == await ask(rpc, c.GetGroupInfo())
        assert await every_page(rpc, "discuss", 1) == await ask(rpc, c.GetDiscussInfo())
        await rpc.close()


async def test_a_bad_page_command_is_answered_invalid(bus_factory, ns, tmp_path):
    async with running_bridge(await bus_factory(), ns, tmp_path):
        bus = await bus_factory()
        replies = await bus.declare_queue("", exclusive=True)
        got: list[bytes] = []
        done = asyncio.Event()

        async def on(d: Delivery) -> None:
            got.append(d.body)
            done.set()

        await bus.consume(replies, on, prefetch=1, auto_ack=True)
        bad = {"command": "get_contacts_page", "kind": "group", "max_entries": 0}
        await bus.publish(
            Names(ns).commands,
            f"query.{ACCOUNT}",
            OutMessage(body=msgspec.json.encode(bad), reply_to=replies, correlation_id="x"),
            mandatory=True,
        )
        async with asyncio.timeout(5):
            await done.wait()
        reply = msgspec.json.decode(got[0])
        assert reply["code"] == c.CODE_INVALID_COMMAND
        assert "max_entries" in reply["status"]


async def test_reads_are_not_kept_in_the_command_record(bus_factory, ns, tmp_path):
    record = SqliteRecord(tmp_path / "record.sqlite")
    async with running_bridge(await bus_factory(), ns, tmp_path, record=record):
        rpc = await rpc_for(bus_factory, ns)
        await ask(rpc, c.GetContactsPage(kind="group"), message_id="page-1")
        await ask(rpc, c.GetGroupInfo(), message_id="groups-1")
        await ask(rpc, c.SendGroupMessage(uid=67890, content="x"), message_id="send-1")
        await rpc.close()
    assert record.lookup("page-1").state == "new"
    assert record.lookup("groups-1").state == "new"
    assert record.lookup("send-1").state == "done"
