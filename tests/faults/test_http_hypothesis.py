"""Property-based fuzzing of the HTTP adapter (hypothesis): whatever the parameters, no 500."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import aiohttp
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.adapters.openqq.routes import ROUTES
from bridge.bus.memory import MemoryBus
from tests.adapter import test_fuzz as raw_fuzz
from tests.conftest import api_url, running_adapter, running_bridge

# The parameter names the seeded raw fuzzer uses, now combined by hypothesis.
NAMES = st.sampled_from(raw_fuzz.NAMES)
VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(["67890", "456789", "88888", "4118239384", "jsonp", "60", "1,2,,3", ""]),
)
REQUEST = st.tuples(
    st.sampled_from(sorted(set(ROUTES) - {"stop_client", "relogin", "check_event"})),
    st.sampled_from(["GET", "POST"]),
    st.lists(st.tuples(NAMES, VALUES), max_size=6),
)


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(REQUEST, min_size=40, max_size=40))
def test_no_parameters_make_the_adapter_fail(requests):
    async def go() -> None:
        shared = MemoryBus()
        tmp = Path(tempfile.mkdtemp())
        async with (
            running_bridge(MemoryBus(shared.broker), "t-hypo", tmp),
            running_adapter(MemoryBus(shared.broker), "t-hypo", rpc_timeout=5) as adapter,
            aiohttp.ClientSession() as s,
        ):
            for endpoint, method, pairs in requests:
                url = api_url(adapter, f"/openqq/{endpoint}")
                kw = {"params": pairs} if method == "GET" else {"data": pairs}
                async with s.request(method, url, **kw) as r:
                    body = await r.read()
                assert r.status < 500, (endpoint, pairs, r.status, body[:200])
                if r.status == 200 and not body.endswith(b")"):
                    msgspec.json.decode(body)

    asyncio.run(go())
