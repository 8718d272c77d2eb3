"""RpcClient while the broker is away: wait and retry, then tell "not sent" from "unknown"."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from bridge.bus.base import OutMessage
from bridge.bus.memory import MemoryBus
from bridge.bus.rpc import MaybeSent, ReplyLost, RpcClient
from bridge.core import commands as c
from bridge.core.routing import Names
from bridge.errors import BrokerAway, PublishFailed, RpcTimeout


class FlakyBus(MemoryBus):
    """A memory bus whose first ``failures`` publishes raise ``error``."""

    def __init__(self, error: type[PublishFailed], failures: int) -> None:
        super().__init__()
        self.error = error
        self.failures = failures
        self.attempts: list[OutMessage] = []

    async def publish(
        self, exchange: str, routing_key: str, message: OutMessage, *, mandatory: bool
    ) -> bool:
        self.attempts.append(message)
        if self.failures:
            self.failures -= 1
            raise self.error("the connection is down")
        return await super().publish(exchange, routing_key, message, mandatory=mandatory)


async def started(bus: MemoryBus) -> RpcClient:
    names = Names("t-rpcwait")
    for exchange in (names.events, names.commands, names.dead):
        await bus.declare_exchange(exchange)
    q = await bus.declare_queue("t-rpcwait.cmds")
    await bus.bind(q, names.commands, "#")
    rpc = RpcClient(bus, names)
    await rpc.start()
    return rpc


@pytest.mark.parametrize("error", [BrokerAway, PublishFailed])
async def test_a_cast_rides_out_failed_publishes_with_one_message_id(error):
    bus = FlakyBus(error, failures=3)
    rpc = await started(bus)
    await rpc.cast("default", c.SendGroupMessage(uid=1, content="x"), timeout=5)
    assert len(bus.attempts) == 4
    assert len({m.message_id for m in bus.attempts}) == 1
    await rpc.close()


async def test_a_cast_never_sent_is_broker_away_one_maybe_sent_is_unknown():
    away = await started(FlakyBus(BrokerAway, failures=10_000))
    with pytest.raises(BrokerAway, match=r"stayed down for 0\.3s: command not sent"):
        await away.cast("default", c.SendGroupMessage(uid=1, content="x"), timeout=0.3)
    maybe = await started(FlakyBus(PublishFailed, failures=10_000))
    with pytest.raises(MaybeSent, match="it may have been sent"):
        await maybe.cast("default", c.SendGroupMessage(uid=1, content="x"), timeout=0.3)


async def test_a_call_never_sent_is_broker_away_one_maybe_sent_times_out():
    away = await started(FlakyBus(BrokerAway, failures=10_000))
    with pytest.raises(BrokerAway):
        await away.call("default", c.GetUserInfo(), timeout=0.3)
    maybe = await started(FlakyBus(PublishFailed, failures=1))
    # Sent on the second try, never answered (nobody consumes): result unknown.
    with pytest.raises(RpcTimeout):
        await maybe.call("default", c.GetUserInfo(), timeout=0.3)


async def test_the_http_api_answers_a_maybe_sent_async_send_as_unknown():
    from bridge.adapters.openqq.app import OpenqqApi
    from bridge.adapters.openqq.check_event import EventBuffer
    from bridge.adapters.openqq.replica import ContactReplica
    from bridge.config import Settings

    rpc = await started(FlakyBus(PublishFailed, failures=10_000))
    opts = Settings(rpc_timeout=0.3)
    api = OpenqqApi(rpc, ContactReplica(rpc, "default", timeout=1), EventBuffer(5), opts)
    answer = await api.cast(c.SendGroupMessage(uid=1, content="x"))
    assert answer is not None
    reply = msgspec.json.decode(answer)
    assert (reply["code"], reply["status"]) == (-3, "发送结果未知"), reply


async def test_stopping_while_a_maybe_sent_command_is_retried_is_result_unknown():
    rpc = await started(FlakyBus(PublishFailed, failures=10_000))
    cast = asyncio.create_task(rpc.cast("default", c.SendGroupMessage(uid=1, content="x")))
    call = asyncio.create_task(rpc.call("default", c.GetUserInfo()))
    await asyncio.sleep(0.2)
    rpc.abort_pending()
    with pytest.raises(ReplyLost, match="may have been sent"):
        await cast
    with pytest.raises(ReplyLost):
        await call
