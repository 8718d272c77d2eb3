"""The command line as a person uses it: help, config errors, run, pid lock, signals."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgspec

from bridge.config import HELP, env_name
from tests.procs import bridge_env, logs, run_cli, start, stop, wait_state


def test_help_explains_every_setting():
    out = run_cli("--help").stdout
    for field, text in HELP.items():
        assert f"  {field} " in out
        assert env_name(field) in out
        assert text in out, field
    assert "run" in out and "bridge" in out and "schemas" in out
    # Booleans as TOML and the environment write them; bounds without exponents.
    assert "[default: true]" in out and "[default: True]" not in out
    assert "e+0" not in out


def test_config_error_is_one_line_and_exit_2(tmp_path):
    done = run_cli("run", env=bridge_env(tmp_path, OPENQQ_ACCOUNT="bad.name"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "setting 'account' (environment OPENQQ_ACCOUNT)" in lines[0]


def test_config_file_before_or_after_the_subcommand(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('prefetch = "lots"\n')
    for args in (["--config", str(cfg), "run"], ["run", "--config", str(cfg)]):
        done = run_cli(*args, env=bridge_env(tmp_path))
        assert done.returncode == 2
        assert f"setting 'prefetch' (config file {cfg})" in done.stderr


def test_prefetch_beyond_an_amqp_short_stops_the_start(tmp_path):
    done = run_cli("run", env=bridge_env(tmp_path, OPENQQ_PREFETCH="100000"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "openqq-bridge: config error: setting 'prefetch' (environment OPENQQ_PREFETCH):"
        " 100000 is out of range 1..65535"
    )


def test_a_misspelled_variable_is_warned_at_start(tmp_path):
    done = run_cli("bridge", env=bridge_env(tmp_path, OPENQQ_PREFECTH="10"))
    assert done.returncode == 2  # no AMQP_URL; the warning comes first all the same
    assert done.stderr.splitlines()[0] == (
        "openqq-bridge: warning: environment variable OPENQQ_PREFECTH is not a setting"
        " and is ignored; did you mean OPENQQ_PREFETCH?"
    )


def test_bridge_needs_a_broker(tmp_path):
    done = run_cli("bridge", env=bridge_env(tmp_path))
    assert done.returncode == 2
    assert "AMQP_URL" in done.stderr


def test_run_embedded_shows_messages_locks_and_stops_cleanly(tmp_path):
    env = bridge_env(tmp_path)
    proc = start(["run"], env, tmp_path)
    try:
        wait_state(tmp_path, "running", proc)
        pid_file = tmp_path / "mojo_webqq_pid_default.pid"
        assert pid_file.read_text().strip() == str(proc.pid)

        req = urllib.request.Request(
            f"http://{env['OPENQQ_SIM_LISTEN']}/sim/inject",
            data=b'{"type":"group_message","group_uid":67890,"sender_uid":456789,"content":"hi\\nthere"}',
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200

        second = tmp_path / "second"
        second.mkdir()
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "run"],
            env={**env, "OPENQQ_SIM_LISTEN": "127.0.0.1:0"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 4
        assert (
            f"another bridge (pid {proc.pid}) is already running for account 'default'"
            in done.stderr
        )
    finally:
        code = stop(proc)
    assert code == 0, logs(tmp_path)
    out = (tmp_path / "stdout.log").read_text()
    assert "[群消息] 灰灰|PERL学习交流 : hi\\nthere" in out
    state = msgspec.json.decode((tmp_path / "mojo_webqq_state_default.json").read_bytes())
    assert state["state"] == "stop"
    assert not pid_file.exists()


def test_stale_pid_file_does_not_block(tmp_path):
    (tmp_path / "mojo_webqq_pid_default.pid").write_text("999999\n")
    env = bridge_env(tmp_path, OPENQQ_SHOW_MESSAGE="false")
    proc = start(["run"], env, tmp_path)
    try:
        wait_state(tmp_path, "running", proc)
    finally:
        assert stop(proc) == 0
    assert (tmp_path / "stdout.log").read_text() == ""


def test_sim_port_in_use_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        t0 = time.monotonic()
        done = run_cli("run", env=bridge_env(tmp_path, OPENQQ_SIM_LISTEN=f"127.0.0.1:{port}"))
    assert done.returncode == 2
    assert f"sim_listen 127.0.0.1:{port}: cannot listen" in done.stderr
    assert time.monotonic() - t0 < 20


def readme_settings_table() -> list[tuple[list[str], list[str]]]:
    """(settings, environment variables) of each row of the README's Settings table."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = line.split("|")
            rows.append((re.findall(r"`([^`]+)`", cells[1]), re.findall(r"`([^`]+)`", cells[2])))
    return rows


def test_readme_settings_table_lists_exactly_the_settings():
    rows = readme_settings_table()
    names = [n for row, _ in rows for n in row]
    assert sorted(names) == sorted(HELP), "README Settings table differs from bridge.config"
    for fields, envs in rows:
        assert envs == [env_name(f) for f in fields], fields


def test_adapter_needs_a_broker(tmp_path):
    done = run_cli("adapter", env=bridge_env(tmp_path))
    assert done.returncode == 2
    assert "`openqq-bridge adapter`" in done.stderr


def test_run_serves_the_http_api_and_post_stdout(tmp_path):
    env = bridge_env(
        tmp_path, OPENQQ_POST_STDOUT="true", OPENQQ_SHOW_MESSAGE="false", OPENQQ_POST_EVENT="false"
    )
    proc = start(["run"], env, tmp_path)
    try:
        wait_state(tmp_path, "running", proc)
        url = f"http://{env['OPENQQ_LISTEN']}/openqq/send_friend_message?uid=456789&content=a%2Fb"
        deadline = time.monotonic() + 15
        body = b""
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    body = r.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert body.startswith(b'{"code":0,"id":')
        time.sleep(0.5)
    finally:
        assert stop(proc) == 0, logs(tmp_path)
    lines = (tmp_path / "stdout.log").read_bytes().splitlines()
    # post_event=false: messages only; each is the legacy JSON on one line.
    assert len(lines) == 1
    assert lines[0].startswith(b'{"class":"send","code":0,"content":"a\\/b"')


def test_listening_beyond_loopback_without_token_warns(caplog):
    import asyncio
    import logging

    from bridge.adapters.openqq.adapter import OpenqqAdapter, is_loopback
    from bridge.bus.memory import MemoryBus
    from bridge.config import Settings
    from bridge.core.routing import Names

    assert is_loopback("127.0.0.2")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")

    async def go() -> None:
        adapter = OpenqqAdapter(MemoryBus(), Names("t-warn"), Settings(listen="0.0.0.0:0"))
        await adapter.start()
        await adapter.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(go())
    assert "without an access token" in caplog.text


def test_declare_needs_a_broker(tmp_path):
    done = run_cli("declare", env=bridge_env(tmp_path))
    assert done.returncode == 2
    assert "`openqq-bridge declare`" in done.stderr
