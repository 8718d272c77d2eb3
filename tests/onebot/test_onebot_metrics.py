"""Metrics of a OneBot account: action latency and failures, reconnects, risk control, pacing."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from bridge.core import commands as c
from bridge.metrics import Metrics
from tests.fake_onebot import failed
from tests.observe.test_endpoints import sample
from tests.onebot.conftest import OB


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def scrape(ob: OB) -> str:
    return ob.bridge.metrics.render().decode()


async def test_actions_failures_risk_control_and_reconnects_are_counted(ob: OB):
    a = {"account": "default"}
    assert (await ob.call(c.SendGroupMessage(uid=67890, content="x")))["code"] == 0
    ob.fake.script["send_group_msg"] = lambda _p: failed(1200, "发送失败，账号可能被风控")
    await ob.call(c.SendGroupMessage(uid=67890, content="y"))
    await ob.event(lambda b: b.get("event") == "risk_control")
    text = scrape(ob)
    assert sample(text, "openqq_onebot_action_seconds_count", action="send_group_msg", **a) == 2
    assert sample(text, "openqq_onebot_action_failures_total", action="send_group_msg", **a) == 1
    assert sample(text, "openqq_risk_control_hits_total", **a) == 1
    assert sample(text, "openqq_upstream_reconnects_total", **a) == 0
    # The pacing of a OneBot account (0.5 s between sends, 1.5 s per conversation) made the
    # second send to the same group wait.
    assert sample(text, "openqq_pacing_waits_total", **a) >= 1

    await ob.fake.drop()
    await ob.event(
        lambda b: b.get("event") == "state_change" and b["params"] == ["updating", "running"]
    )
    text = scrape(ob)
    assert sample(text, "openqq_upstream_reconnects_total", **a) == 1
    assert sample(text, "openqq_upstream_state", state="running", **a) == 1
