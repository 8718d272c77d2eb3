"""What the bridge says when the broker refuses it or is away: one clear line, the right exit."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from yarl import URL

from tests.procs import bridge_env, free_port, run_cli


def run_bridge(tmp_path: Path, amqp_url: str, retry_seconds: str = "20") -> tuple[int, str]:
    env = bridge_env(tmp_path, AMQP_URL=amqp_url, OPENQQ_CONNECT_RETRY_SECONDS=retry_seconds)
    done = run_cli("bridge", env=env)
    return done.returncode, done.stderr


@pytest.mark.rabbitmq
def test_wrong_password_is_refused_at_once_and_says_so(rabbitmq, tmp_path):
    url = str(URL(rabbitmq).with_password("wrong-pw-4711"))
    code, err = run_bridge(tmp_path, url)
    assert code == 2, err
    assert "refused the login of user 'guest' (ACCESS_REFUSED)" in err
    assert "check the user and password" in err
    assert "unreachable" not in err
    assert "not reachable (attempt" not in err  # no retry
    assert "wrong-pw-4711" not in err


@pytest.mark.rabbitmq
def test_missing_vhost_is_refused_at_once_naming_it(rabbitmq, tmp_path):
    vhost = f"/nonexistent-{uuid.uuid4().hex}"
    url = str(URL(rabbitmq).with_path("/" + vhost.replace("/", "%2F"), encoded=True))
    code, err = run_bridge(tmp_path, url)
    assert code == 2, err
    assert f"refused to open virtual host {vhost!r}" in err
    assert "Connection.Close object" not in err
    assert "not reachable (attempt" not in err  # no retry
    assert "guest:guest" not in err


def test_unreachable_broker_is_retried_with_one_line_per_retry(tmp_path):
    port = free_port()  # nothing listens there
    code, err = run_bridge(tmp_path, f"amqp://guest:pw-0815@127.0.0.1:{port}/", "2")
    assert code == 3, err
    lines = err.strip().splitlines()
    retries = [ln for ln in lines if "not reachable (attempt" in ln]
    assert len(retries) >= 2
    # Besides the retries: "connecting to", then the final error; nothing logged twice.
    assert len(lines) == len(retries) + 2, err
    assert "error when creating transport" not in err
    assert "pw-0815" not in err


@pytest.mark.rabbitmq
def test_a_url_list_with_a_refused_login_names_no_password(rabbitmq, tmp_path):
    dead = f"amqp://guest:dead-pw-1@127.0.0.1:{free_port()}/"
    refused = str(URL(rabbitmq).with_password("wrong-pw-4711"))
    code, err = run_bridge(tmp_path, f"{dead},{refused}")
    assert code == 2, err
    assert "refused the login of user 'guest' (ACCESS_REFUSED)" in err
    assert "dead-pw-1" not in err
    assert "wrong-pw-4711" not in err


def test_an_unreachable_url_list_names_each_url_without_password(tmp_path):
    one, two = free_port(), free_port()
    urls = f"amqp://guest:pw-0815@127.0.0.1:{one}/,amqp://bot:pw-4242@127.0.0.1:{two}/"
    code, err = run_bridge(tmp_path, urls, "1")
    assert code == 3, err
    assert f"amqp://guest:***@127.0.0.1:{one}/" in err
    assert f"amqp://bot:***@127.0.0.1:{two}/" in err
    assert "pw-0815" not in err
    assert "pw-4242" not in err
