"""Without a bridge the adapter answers at once with a clear JSON error, never hangs."""

from __future__ import annotations

import aiohttp

from bridge.bus.memory import MemoryBus
from tests.conftest import api_url, running_adapter


async def test_answers_when_no_bridge_serves_the_account(ns):
    async with (
        running_adapter(MemoryBus(), ns, wait_replica=False, rpc_timeout=1) as adapter,
        aiohttp.ClientSession() as s,
    ):
        async with s.get(api_url(adapter, "/openqq/get_user_info")) as r:
            body = await r.read()
        assert r.status == 200
        assert body == (
            f'{{"code":-7,"status":"bridge unavailable: no bridge queue is bound for'
            f' query.default on {ns}.commands"}}'.encode()
        )
        async with s.get(api_url(adapter, "/openqq/send_group_message?uid=67890&content=x")) as r:
            body = await r.read()
        assert body.startswith(b'{"code":-5,"id":null,"info":"bridge unavailable: no bridge queue')
        assert body.endswith('"status":"发送失败"}'.encode())
