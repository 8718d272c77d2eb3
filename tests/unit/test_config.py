import pytest

from bridge.config import load_settings
from bridge.errors import ConfigError


def test_defaults():
    s = load_settings(env={})
    assert (s.account, s.namespace, s.amqp_url, s.upstream) == ("default", "openqq", None, "sim")
    assert s.sim_listen == "127.0.0.1:5001"


def test_env_wins_over_file(tmp_path):
    cfg = tmp_path / "bridge.toml"
    cfg.write_text('account = "from_file"\nprefetch = 7\nshow_message = false\n')
    s = load_settings(cfg, env={"OPENQQ_ACCOUNT": "from_env"})
    assert s.account == "from_env"
    assert s.prefetch == 7
    assert s.show_message is False


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"OPENQQ_PREFETCH": "many"}, "setting 'prefetch' (environment OPENQQ_PREFETCH)"),
        ({"OPENQQ_PREFETCH": "0"}, "setting 'prefetch'"),
        ({"OPENQQ_ACCOUNT": "a.b"}, "setting 'account' (environment OPENQQ_ACCOUNT)"),
        ({"OPENQQ_NAMESPACE": "x#"}, "setting 'namespace'"),
        ({"AMQP_URL": "http://h/"}, "setting 'amqp_url' (environment AMQP_URL)"),
        ({"OPENQQ_SIM_LISTEN": "5001"}, "setting 'sim_listen'"),
        ({"OPENQQ_UPSTREAM": "webqq"}, "setting 'upstream'"),
        ({"OPENQQ_QUEUE_TYPE": "stream"}, "setting 'queue_type'"),
    ],
)
def test_errors_name_the_setting_and_its_origin(env, fragment):
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_file_errors(tmp_path):
    bad = tmp_path / "a.toml"
    bad.write_text('acount = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'acount'"):
        load_settings(bad, env={})
    bad.write_text("account = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})
    with pytest.raises(ConfigError, match="config file"):
        load_settings(tmp_path / "missing.toml", env={})


def test_password_never_in_repr():
    s = load_settings(env={"AMQP_URL": "amqp://bot:s3cret@mq:5672/"})
    assert "s3cret" not in repr(s)
    assert "amqp://bot:***@mq:5672/" in repr(s)
