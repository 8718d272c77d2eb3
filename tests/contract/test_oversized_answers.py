"""An answer bigger than the broker takes is answered with an error, once, not requeued for ever."""

from __future__ import annotations

import logging

import msgspec

from bridge.bus.commands import REPLY_HEADROOM
from bridge.bus.rpc import RpcClient
from bridge.core import commands as c
from bridge.core.routing import Names
from tests.conftest import ACCOUNT, running_bridge


async def test_an_answer_over_the_message_limit_is_an_error_and_is_acked(
    bus_factory, ns, tmp_path, caplog
):
    bus = await bus_factory()
    async with running_bridge(bus, ns, tmp_path) as (bridge, _sim):
        rpc = RpcClient(await bus_factory(), Names(ns))
        await rpc.start()
        whole = await rpc.call(ACCOUNT, c.GetGroupInfo(), timeout=5)
        user = await rpc.call(ACCOUNT, c.GetUserInfo(), timeout=5)
        assert len(user) < len(whole)
        # The broker of this test takes less than the whole group list, more than the user.
        bus.max_message_bytes = REPLY_HEADROOM + (len(user) + len(whole)) // 2
        executed = bridge.server.executed
        with caplog.at_level(logging.WARNING, logger="bridge.bus.commands"):
            refused = msgspec.json.decode(await rpc.call(ACCOUNT, c.GetGroupInfo(), timeout=5))
        assert refused["code"] == -5
        assert refused["status"].startswith("answer too large for the broker")
        assert "get_contacts_page" in refused["status"]
        assert any("not answered in full" in r.message for r in caplog.records)
        # Run once and acked: not requeued and run again (reads are not recorded).
        assert bridge.server.executed == executed + 1
        assert await rpc.call(ACCOUNT, c.GetUserInfo(), timeout=5) == user
        assert bridge.server.executed == executed + 2
        await rpc.close()
