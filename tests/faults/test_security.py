"""Security: constant-time token checks, no secrets in logs, loopback by default."""

from __future__ import annotations

import hmac
import subprocess
import sys
import time

import aiohttp
import pytest

from bridge.bus.memory import MemoryBus
from bridge.config import Settings, parse_hostport
from tests.conftest import api_url, running_adapter
from tests.procs import bridge_env, free_port


def test_everything_listens_on_loopback_by_default():
    s = Settings()
    for field in ("listen", "sim_listen", "onebot_listen"):
        host, _ = parse_hostport(getattr(s, field), field)
        assert host == "127.0.0.1", field


async def test_the_token_is_compared_in_constant_time(monkeypatch, ns):
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("bridge.adapters.openqq.app.hmac.compare_digest", spy)
    async with (
        running_adapter(
            MemoryBus(), ns, wait_replica=False, access_token="s3cret", rpc_timeout=0.5
        ) as adapter,
        aiohttp.ClientSession() as s,
        s.get(api_url(adapter, "/openqq/get_user_info?access_token=nope")) as r,
    ):
        assert await r.read() == b'{"code":-6,"status":"auth failure"}'
    assert calls == [(b"nope", b"s3cret")]


async def test_stop_client_and_relogin_are_refused_without_the_token(ns):
    async with (
        running_adapter(
            MemoryBus(), ns, wait_replica=False, access_token="s3cret", rpc_timeout=0.5
        ) as adapter,
        aiohttp.ClientSession() as s,
    ):
        for path in ("/openqq/stop_client", "/openqq/relogin"):
            async with s.get(api_url(adapter, path)) as r:
                assert await r.read() == b'{"code":-6,"status":"auth failure"}'


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_no_secret_reaches_the_logs(rabbitmq, tmp_path):
    # A broker password, an access token and a OneBot token, with debug logging on.
    env = bridge_env(
        tmp_path,
        AMQP_URL=f"amqp://guest:s3cretpw@127.0.0.1:{free_port()}/",
        OPENQQ_CONNECT_RETRY_SECONDS="1",
        OPENQQ_ACCESS_TOKEN="tok-abcdef",
        OPENQQ_ONEBOT_TOKEN="ob-123456",
        OPENQQ_LOG_LEVEL="debug",
    )
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "bridge"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    out = done.stdout + done.stderr
    assert "guest:***@" in out
    for secret in ("s3cretpw", "tok-abcdef", "ob-123456"):
        assert secret not in out
    # And a running process with its settings in the log: the same.
    env = bridge_env(
        tmp_path,
        OPENQQ_ACCESS_TOKEN="tok-abcdef",
        OPENQQ_LOG_LEVEL="debug",
        OPENQQ_ONEBOT_TOKEN="ob-123456",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(3)
    proc.terminate()
    out, _ = proc.communicate(timeout=20)
    assert "Openqq API on http" in out
    for secret in ("tok-abcdef", "ob-123456"):
        assert secret not in out
