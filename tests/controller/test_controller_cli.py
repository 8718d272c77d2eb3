"""`openqq-bridge controller` start-up: settings, [accounts.NAME] tables, exit codes."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest

from bridge.config import PER_ACCOUNT, Settings, load_accounts, load_settings, settings_env
from bridge.controller.datafile import DataFile
from bridge.controller.multi import with_client
from bridge.errors import ConfigError
from tests.conftest import delete_namespace
from tests.controller.conftest import Ctl, Receiver, backend_base
from tests.procs import bridge_env, free_port, logs, run_cli, start, stop, wait_state


def test_controller_needs_the_broker(tmp_path):
    done = run_cli("controller", env=bridge_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr == (
        "openqq-bridge: config error: setting 'amqp_url' (AMQP_URL) is required by"
        " `openqq-bridge controller`; `openqq-bridge run` uses the embedded bus\n"
    )


@pytest.mark.parametrize(
    ("table", "error"),
    [
        (
            "[accounts.c1]\nfoo = 1\n",
            "[accounts.c1]: unknown setting 'foo'; see openqq-bridge --help",
        ),
        (
            "[accounts.c1]\nlog_levle = 'debug'\n",
            "[accounts.c1]: unknown setting 'log_levle'; did you mean log_level?",
        ),
        ("[accounts.c1]\nlisten = '127.0.0.1:1'\n", "setting 'listen' is the controller's"),
        ('[accounts."a.b"]\n', "[accounts.a.b]: the account name must be 1-64 letters"),
        ("accounts = 3\n", "'accounts' must be tables [accounts.NAME]"),
    ],
)
def test_bad_account_tables_are_clear_errors(tmp_path, table, error):
    cfg = tmp_path / "c.toml"
    cfg.write_text(table)
    with pytest.raises(ConfigError) as info:
        load_accounts(cfg)
    assert str(info.value).startswith(f"config file {cfg}: ")
    assert error in str(info.value)


def test_a_bad_account_table_stops_the_controller_with_exit_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[accounts.c1]\nfoo = 1\n")
    done = run_cli(
        "controller", "--config", str(cfg), env=bridge_env(tmp_path, AMQP_URL="amqp://x/")
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"openqq-bridge: config error: config file {cfg}: [accounts.c1]: unknown setting"
        " 'foo'; see openqq-bridge --help\n"
    )


def test_account_tables_are_read_as_text_and_ignored_by_other_commands(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "log_level = 'debug'\n[accounts.c1]\nsim_login_delay = 1.5\nshow_message = false\n"
        "onebot_risk_retcodes = [1, 2]\n[accounts.c2]\n"
    )
    assert load_accounts(cfg) == {
        "c1": {"sim_login_delay": "1.5", "show_message": "false", "onebot_risk_retcodes": "1,2"},
        "c2": {},
    }
    assert load_settings(cfg, {}).log_level == "debug"


def test_settings_env_reproduces_the_settings():
    s = Settings(
        account="x",
        amqp_url="amqp://u:p@h/",
        show_message=False,
        sim_login_delay=1.5,
        post_event_list=["new_friend", "login"],
        onebot_risk_retcodes=[1, 2],
        backend_start_port=6000,
    )
    assert load_settings(None, settings_env(s)) == s


@pytest.mark.parametrize(
    ("url", "merged"),
    [
        ("http://h/p", "http://h/p?client=c1"),
        ("http://h/p?a=1&b=%20", "http://h/p?a=1&b=%20&client=c1"),
        ("http://h/p?client=old&a=1", "http://h/p?a=1&client=c1"),
        ("http://h/p?a=1#frag", "http://h/p?a=1&client=c1#frag"),
        (None, None),
    ],
)
def test_post_api_gets_client_merged_into_its_query(url, merged):
    # Mojo::URL->query->merge(client => NAME), as Controller.pm does for post_api/poll_api.
    assert with_client(url, "c1") == merged


def test_port_numbers_are_kept_and_reused_smallest_first(tmp_path):
    f = DataFile(tmp_path, "ns")
    assert [f.port_number(n) for n in ("a", "b", "c", "a")] == [0, 1, 2, 0]
    del f.data.ports["b"]
    assert f.port_number("d") == 1
    again = DataFile(tmp_path, "ns")
    again.load()
    assert again.data.ports == {"a": 0, "c": 2, "d": 1}


def test_a_second_controller_on_the_same_files_is_refused(tmp_path):
    first = DataFile(tmp_path, "ns")
    first.lock()
    try:
        with pytest.raises(Exception, match="another controller"):
            DataFile(tmp_path, "ns").lock()
    finally:
        first.release()


@pytest.mark.slow
def test_accounts_of_the_config_file_start_at_launch(rabbitmq, tmp_path):
    ns = f"t-{uuid.uuid4().hex[:10]}"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[accounts.cfg1]\nlog_level = 'debug'\n")
    port = free_port()
    env = bridge_env(
        tmp_path,
        AMQP_URL=rabbitmq,
        OPENQQ_NAMESPACE=ns,
        OPENQQ_CONTROLLER_LISTEN=f"127.0.0.1:{port}",
        OPENQQ_BACKEND_START_PORT=str(backend_base()),
    )
    ctl = Ctl(tmp_path, env, ns, f"http://127.0.0.1:{port}", 0, Receiver())
    try:
        ctl.start("--config", str(cfg))
        c = ctl.wait_state("cfg1", "running")
        assert (c["log_level"], c["upstream"]) == ("debug", "sim")
        assert c["pid"] in ctl.bridge_pids()
    finally:
        ctl.stop_all()
        asyncio.run(delete_namespace(rabbitmq, ns, ("cfg1",)))


def test_first_presence_of_a_bridge_on_a_fresh_namespace_finds_its_exchange(rabbitmq, tmp_path):
    # Before the fix, it went out before the exchanges were declared: NOT_FOUND closed the
    # publish channel that the bridge's events share.
    ns = f"t-{uuid.uuid4().hex[:10]}"
    env = bridge_env(tmp_path, AMQP_URL=rabbitmq, OPENQQ_NAMESPACE=ns, OPENQQ_LOG_LEVEL="debug")
    proc = start(["bridge"], env, tmp_path)
    try:
        wait_state(tmp_path, "running", proc)
    finally:
        assert stop(proc) == 0
        asyncio.run(delete_namespace(rabbitmq, ns))
    assert "NOT_FOUND" not in logs(tmp_path, whole=True)
    assert "presence of default not published" not in logs(tmp_path, whole=True)


def test_readme_lists_the_settings_an_account_may_set():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("Settings one account may set for itself", 1)[1]
    text = section.split("parameters:", 1)[1].split("Any other", 1)[0]
    listed = set(re.findall(r"`([a-z_]+)`", text))
    assert listed == PER_ACCOUNT
