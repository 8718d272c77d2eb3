"""The OneBot face's settings and process roles: validation, `onebot` needs a broker and a
target, `run` serves the face on the embedded bus when onebot_server_listen is set."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bridge.adapters.onebot.face import parse_target, signature, token_check
from bridge.config import load_settings
from bridge.errors import ConfigError
from tests.procs import bridge_env, free_port, logs, run_cli, start, stop, wait_state


def test_lists_and_names_from_the_environment() -> None:
    s = load_settings(
        env={
            "OPENQQ_ONEBOT_SERVER_LISTEN": "127.0.0.1:6700",
            "OPENQQ_ONEBOT_SERVER_REVERSE": "nb=ws://h:1/onebot/v11/ws, ws://h:2/ws/?a=b",
            "OPENQQ_ONEBOT_SERVER_POST": "http://h:3/",
            "OPENQQ_ONEBOT_SERVER_TOKEN": "tok-9f3a",
            "OPENQQ_ONEBOT_SERVER_SECRET": "sec-7b1c",
        }
    )
    assert [parse_target(e) for e in s.onebot_server_reverse] == [
        parse_target("nb=ws://h:1/onebot/v11/ws"),
        parse_target("ws://h:2/ws/?a=b"),
    ]
    assert parse_target(s.onebot_server_reverse[0]).bot == "nb"
    assert parse_target(s.onebot_server_reverse[1]).bot is None
    assert parse_target(s.onebot_server_reverse[1]).url == "ws://h:2/ws/?a=b"
    assert "tok-9f3a" not in repr(s)
    assert "sec-7b1c" not in repr(s)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"OPENQQ_ONEBOT_SERVER_LISTEN": "6700"}, "onebot_server_listen"),
        ({"OPENQQ_ONEBOT_SERVER_REVERSE": "http://h/ws"}, "must start with ws:// or wss://"),
        ({"OPENQQ_ONEBOT_SERVER_REVERSE": "bad name=ws://h/"}, "onebot_server_reverse"),
        ({"OPENQQ_ONEBOT_SERVER_POST": "ws://h/"}, "must start with http:// or https://"),
        ({"OPENQQ_ONEBOT_SERVER_QUEUE_MAX": "0"}, "out of range"),
        ({"OPENQQ_ONEBOT_SERVER_QUEUE_HOURS": "0"}, "out of range"),
    ],
)
def test_bad_values_are_one_line_errors(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(env=env)


def test_signature_and_token_rules() -> None:
    # The example of communication/http-post.md's receivers: HMAC-SHA1 over the raw body.
    assert (
        signature("k", b"{}") == "sha1=" + __import__("hmac").new(b"k", b"{}", "sha1").hexdigest()
    )
    from aiohttp.test_utils import make_mocked_request

    def req(path: str, auth: str | None = None) -> Any:
        return make_mocked_request("GET", path, headers={"Authorization": auth} if auth else {})

    assert token_check(None, req("/")) is None
    assert token_check("t", req("/")) == 401
    assert token_check("t", req("/?access_token=x")) == 403
    assert token_check("t", req("/?access_token=t")) is None
    assert token_check("t", req("/", "Bearer t")) is None
    assert token_check("t", req("/", "token t")) is None
    assert token_check("t", req("/", "Basic t")) == 401


def test_onebot_role_needs_a_target_and_a_broker(tmp_path: Path) -> None:
    done = run_cli("onebot", env=bridge_env(tmp_path))
    assert done.returncode == 2
    assert "onebot_server_listen" in done.stderr
    done = run_cli("onebot", env=bridge_env(tmp_path, OPENQQ_ONEBOT_SERVER_LISTEN="127.0.0.1:0"))
    assert done.returncode == 2
    assert "`openqq-bridge onebot`" in done.stderr


@pytest.mark.slow
def test_run_serves_the_face_on_the_embedded_bus(tmp_path: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    env = bridge_env(tmp_path, OPENQQ_ONEBOT_SERVER_LISTEN=listen, OPENQQ_SHOW_MESSAGE="false")
    proc = start(["run"], env, tmp_path)
    try:
        wait_state(tmp_path, "running", proc)
        deadline = time.monotonic() + 15
        body: Any = None
        while True:
            try:
                with urllib.request.urlopen(f"http://{listen}/get_login_info", timeout=5) as r:
                    body = msgspec.json.decode(r.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert body["status"] == "ok"
        assert body["data"]["user_id"] == 123456
        url = f"http://{listen}/send_private_msg?user_id=456789&message=hi"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert msgspec.json.decode(r.read())["retcode"] == 0
    finally:
        assert stop(proc) == 0, logs(tmp_path)


def test_bot_queues_follow_queue_type_and_bounds() -> None:
    from bridge.adapters.onebot.feed import bot_queue, bot_queue_arguments
    from bridge.core.routing import Names

    assert bot_queue(Names("ns"), "acct", "nb") == "ns.onebot.acct.nb"
    assert bot_queue_arguments(500, 3600, "classic") == {
        "x-max-length": 500,
        "x-overflow": "drop-head",
        "x-message-ttl": 3_600_000,
    }
    assert bot_queue_arguments(500, 3600, "quorum")["x-queue-type"] == "quorum"
