import re
from typing import get_type_hints

import pytest

from bridge.config import (
    HELP,
    Settings,
    allowed_range,
    cluster_advice,
    env_name,
    load_settings,
    unknown_variables,
)
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


def test_prefetch_beyond_an_amqp_short_is_refused_with_the_value():
    # basic.qos prefetch-count is an AMQP short: 100000 crashed the bridge after login.
    with pytest.raises(ConfigError) as err:
        load_settings(env={"OPENQQ_PREFETCH": "100000"})
    assert str(err.value) == (
        "setting 'prefetch' (environment OPENQQ_PREFETCH): 100000 is out of range 1..65535"
    )


def test_large_bounds_are_written_out_not_in_exponent_form():
    # "1073741825 is out of range 1024..1.07374e+09" read as if the value were inside.
    with pytest.raises(ConfigError) as err:
        load_settings(env={"OPENQQ_MAX_REQUEST_BYTES": "1073741825"})
    assert str(err.value).endswith("1073741825 is out of range 1024..1073741824")
    assert "e+" not in (allowed_range("max_request_bytes") or "")


def test_range_errors_from_a_file_show_the_value(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("rpc_timeout = 0\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert str(err.value) == (
        f"setting 'rpc_timeout' (config file {cfg}): 0 is out of range > 0 and <= 3600"
    )


def test_type_errors_show_the_value():
    with pytest.raises(ConfigError, match=r"OPENQQ_PREFETCH\): 'many': Expected `int`"):
        load_settings(env={"OPENQQ_PREFETCH": "many"})


HINTS = get_type_hints(Settings, include_extras=True)
# Retcodes are only compared with what the implementation answers, never sent anywhere.
NUMERIC = [
    f for f in HELP if re.search(r"\b(int|float)\b", str(HINTS[f])) and f != "onebot_risk_retcodes"
]


@pytest.mark.parametrize("field", NUMERIC)
def test_every_numeric_setting_has_an_upper_bound(field):
    # Unbounded values reach asyncio, aiohttp and AMQP fields that overflow or hang forever.
    values = ["1000000000000", "inf"] if "float" in str(HINTS[field]) else ["1000000000000"]
    for value in values:
        with pytest.raises(ConfigError, match=f"setting '{field}'.*: {value} is out of range"):
            load_settings(env={env_name(field): value})


def test_the_numeric_settings_are_found():
    assert {"prefetch", "rpc_timeout", "send_interval", "max_request_bytes"} <= set(NUMERIC)


def test_secrets_never_appear_in_errors():
    with pytest.raises(ConfigError) as err:
        load_settings(env={"AMQP_URL": "http://guest:hunter2@h/"})
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(env={"OPENQQ_POST_API": "ftp://h/x?token=hunter2"})
    assert "hunter2" not in str(err.value)
    assert "'ftp://h/x'" in str(err.value)


def test_a_misspelled_variable_is_named_with_the_closest_setting():
    env = {
        "OPENQQ_PREFECTH": "10",
        "OPENQQ_AMQP_URL": "amqp://h/",
        "OPENQQ_ZZZ": "1",
        "OPENQQ_PREFETCH": "5",
        "OPENQQ_BROKER_PASSWORD": "compose uses it",
        "HOME": "/",
    }
    assert unknown_variables(env) == [
        "environment variable OPENQQ_AMQP_URL is not a setting and is ignored;"
        " did you mean AMQP_URL?",
        "environment variable OPENQQ_PREFECTH is not a setting and is ignored;"
        " did you mean OPENQQ_PREFETCH?",
        "environment variable OPENQQ_ZZZ is not a setting and is ignored; see openqq-bridge --help",
    ]


def test_an_unknown_file_key_names_the_closest_setting(tmp_path):
    bad = tmp_path / "a.toml"
    bad.write_text("prefech = 3\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'prefech'; did you mean prefetch\?"):
        load_settings(bad, env={})


# --- several broker URLs (a cluster's nodes) and their passwords -------------------------
CLUSTER = "amqp://bot:pw1@mq1:5672/,amqp://bot:pw2@mq2:5673/, amqp://bot:p%2Cw3@mq3/"


def test_a_comma_separated_amqp_url_is_a_list_of_urls():
    s = load_settings(env={"AMQP_URL": CLUSTER})
    assert s.amqp_urls == [
        "amqp://bot:pw1@mq1:5672/",
        "amqp://bot:pw2@mq2:5673/",
        "amqp://bot:p%2Cw3@mq3/",
    ]


def test_a_toml_list_of_urls(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('amqp_url = ["amqp://bot:a,b@mq1/", "amqp://bot:c@mq2:5673/"]\n')
    s = load_settings(cfg, env={})
    # A comma inside a password survives the list: it is written %2C, which means the same.
    assert s.amqp_urls == ["amqp://bot:a%2Cb@mq1/", "amqp://bot:c@mq2:5673/"]
    cfg.write_text('amqp_url = ["amqp://bot:a@mq1/", 5]\n')
    with pytest.raises(ConfigError, match="a list of URL strings"):
        load_settings(cfg, env={})


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        # Before: a list read as one URL, the second URL becoming the vhost.
        ("amqp://bot:pw1@mq1:5681/;amqp://bot:pw2@mq2:5682/", "contains another URL"),
        ("amqp://bot:pw1@mq1/,http://bot:pw2@mq2/", "URL 2 of 2: 'http://bot:***@mq2/' must start"),
        (
            "amqp://bot:pw1@mq1/,amqp://bot:pw2@:5672/",
            "URL 2 of 2: 'amqp://bot:***@:5672/' names no host",
        ),
        (
            "amqp://bot:pw1@mq1/,amqp://bot:pw2@mq2:99999/",
            "URL 2 of 2: 'amqp://bot:***@mq2:99999/' is not a URL",
        ),
        ("amqp://bot:pw1@mq1/,amqp://bot:pw1@mq1/", "listed twice"),
        (" , ", "no URL given"),
    ],
)
def test_each_url_of_the_list_is_validated_and_its_password_hidden(value, fragment):
    with pytest.raises(ConfigError) as err:
        load_settings(env={"AMQP_URL": value})
    text = str(err.value)
    assert fragment in text
    assert "setting 'amqp_url' (environment AMQP_URL)" in text
    assert "pw1" not in text
    assert "pw2" not in text


def test_no_password_of_a_list_in_repr():
    s = load_settings(env={"AMQP_URL": CLUSTER})
    shown = repr(s)
    for secret in ("pw1", "pw2", "p%2Cw3"):
        assert secret not in shown
    assert "amqp://bot:***@mq1:5672/,amqp://bot:***@mq2:5673/" in shown


def test_several_brokers_with_classic_queues_get_advice():
    assert cluster_advice(load_settings(env={"AMQP_URL": "amqp://mq1/"})) is None
    quorum = {"AMQP_URL": CLUSTER, "OPENQQ_QUEUE_TYPE": "quorum"}
    assert cluster_advice(load_settings(env=quorum)) is None
    advice = cluster_advice(load_settings(env={"AMQP_URL": CLUSTER}))
    assert advice is not None
    assert "lists 3 brokers but queue_type is classic" in advice
    assert "OPENQQ_QUEUE_TYPE=quorum" in advice
