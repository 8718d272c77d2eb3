"""The controller in-process on the embedded bus: the default account, the access token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from bridge.bus.memory import MemoryBus
from bridge.config import Settings
from bridge.controller.run import Controller
from bridge.metrics import OFF, Metrics
from tests.conftest import running_bridge
from tests.procs import free_port


@asynccontextmanager
async def controller(
    tmp_path: Path, ns: str, *, metrics: Metrics = OFF, **options: object
) -> AsyncIterator[Controller]:
    bus = MemoryBus()
    opts = Settings(
        namespace=ns,
        tmpdir=str(tmp_path),
        controller_listen="127.0.0.1:0",
        backend_start_port=free_port(),
        **options,  # type: ignore[arg-type]
    )
    ctl = Controller(bus, opts, {}, metrics=metrics)
    await ctl.start()
    try:
        yield ctl
    finally:
        await ctl.stop()
        await bus.close()


def url(ctl: Controller, path: str) -> str:
    assert ctl.bound is not None
    return f"http://{ctl.bound[0]}:{ctl.bound[1]}{path}"


async def get(ctl: Controller, path: str, **headers: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url(ctl, path), headers=headers) as r:
        return r.status, await r.read()


async def test_without_client_the_default_account_answers(tmp_path, ns):
    async with controller(tmp_path, ns) as ctl:
        assert await get(ctl, "/openqq/get_user_info") == (
            200,
            b'{"code":1,"status":"client not found"}',
        )
        async with running_bridge(MemoryBus(ctl.bus.broker), ns, tmp_path / "b"):  # type: ignore[attr-defined]
            async with asyncio.timeout(10):
                while "default" not in ctl.registry.accounts:
                    await asyncio.sleep(0.05)
            status, body = await get(ctl, "/openqq/get_user_info")
            assert status == 200
            assert body.startswith(b'{"account":123456,')
            # The same bytes as with client=default.
            assert (await get(ctl, "/openqq/get_user_info?client=default"))[1] == body
            status, listed = await get(ctl, "/openqq/check_client")
            assert b'"client":"default"' in listed
            assert b'"pid":null' in listed  # not started by this controller


@pytest.mark.parametrize(
    "path", ["/openqq/check_client", "/openqq/start_client?client=x", "/openqq/get_user_info"]
)
async def test_every_endpoint_wants_the_access_token(tmp_path, ns, path):
    async with controller(tmp_path, ns, access_token="s3cret") as ctl:
        assert await get(ctl, path) == (200, b'{"code":-6,"status":"auth failure"}')
        wrong = await get(ctl, path, Authorization="Bearer nope")
        assert wrong == (200, b'{"code":-6,"status":"auth failure"}')
        status, body = await get(ctl, "/openqq/check_client", Authorization="Bearer s3cret")
        assert (status, body) == (200, b'{"client":[],"code":0}')
        assert "x" not in ctl.supervisor.bridges
