"""Settings: defaults, then a TOML file (``--config``), then environment variables (env wins).

Each setting is declared once, as a field of :class:`Settings` with its help text in its
``Meta(description=...)``: ``--help``, the README check and every component read that one
declaration, under that one name. Every setting has an environment variable
``OPENQQ_<NAME>`` (``AMQP_URL`` for the broker). Values are validated at start; an error
names the setting and where it came from, in one line. Secrets (the AMQP password) are never
logged: use :func:`bridge.brokerurls.redact`, which masks every URL of a list.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

import msgspec
from msgspec import Meta

from bridge import brokerurls
from bridge.core.events import DEFAULT_EVENTS, EVENT_NAMES
from bridge.core.routing import valid_name
from bridge.errors import ConfigError

#: Pauses between sends; None: the upstream's default.
Interval = Annotated[float, Meta(ge=0, le=3600)]


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Every setting of openqq-bridge (see ``openqq-bridge --help``)."""

    account: Annotated[
        str,
        Meta(
            description="account name: routing keys, queue names, data files (letters, digits, _ -)"
        ),
    ] = "default"
    namespace: Annotated[
        str, Meta(description="prefix of every exchange and queue name (letters, digits, _ -)")
    ] = "openqq"
    amqp_url: Annotated[
        str | None,
        Meta(
            description=(
                "RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/, or the URLs of a"
                " cluster's nodes, comma-separated (a list in TOML): tried in order on connect"
                " and every reconnect (unset: in-memory bus)"
            )
        ),
    ] = None
    upstream: Annotated[
        Literal["sim", "onebot"],
        Meta(description="the QQ side: sim (simulated account) or onebot (NapCat, LLBot, ...)"),
    ] = "sim"
    queue_type: Annotated[
        Literal["classic", "quorum"],
        Meta(
            description=(
                "classic or quorum command and post_api queues and role lease (quorum:"
                " clusters, standby bridges); the same on every bridge and adapter"
            )
        ),
    ] = "classic"
    prefetch: Annotated[
        int,
        Meta(
            ge=1,
            le=65535,
            description="unacknowledged commands per queue the bridge works on at once",
        ),
    ] = 64
    connect_retry_seconds: Annotated[
        float,
        Meta(
            ge=0,
            le=86400,
            description="how long to retry the first broker connection before exiting",
        ),
    ] = 30.0
    max_message_mb: Annotated[
        float,
        Meta(
            gt=0,
            le=512,
            description=(
                "the broker's max_message_size in MiB (RabbitMQ 4: 16, 3.8-3.13: 128); a read"
                " whose answer is larger is refused with -5 instead of sent"
            ),
        ),
    ] = 16.0
    event_buffer: Annotated[
        int,
        Meta(
            ge=1,
            le=10_000_000,
            description="events held while the broker is away; the upstream waits when full",
        ),
    ] = 10_000
    buffer_wait: Annotated[
        float,
        Meta(
            ge=0,
            le=3600,
            description="seconds an upstream event may wait for buffer room before refused",
        ),
    ] = 5.0
    ready_wait: Annotated[
        float,
        Meta(ge=0, le=3600, description="seconds a command waits for the account to be running"),
    ] = 30.0
    send_interval: Annotated[
        Interval | None, Meta(description="min seconds between any two sends (default: 0 for sim)")
    ] = None
    send_interval_per_target: Annotated[
        Interval | None, Meta(description="min seconds between sends to one conversation (sim: 0)")
    ] = None
    tmpdir: Annotated[
        str,
        Meta(
            description="directory of the state JSON, QR code PNG, pid file (default: system temp)"
        ),
    ] = ""
    show_message: Annotated[
        bool, Meta(description="print each message in one readable line on stdout (true/false)")
    ] = True
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"],
        Meta(description="debug, info, warning or error"),
    ] = "info"
    log_format: Annotated[
        Literal["text", "json"],
        Meta(description="text, or json: one JSON object a line (time, level, logger, ...)"),
    ] = "text"
    metrics: Annotated[
        bool, Meta(description="count Prometheus metrics (/metrics) (true/false)")
    ] = True
    status_accounts: Annotated[
        list[str],
        Meta(description="more accounts of the namespace the adapter's /status shows"),
    ] = []
    metrics_listen: Annotated[
        str | None,
        Meta(description="host:port of the bridge's /metrics, /healthz, /readyz; unset: off"),
    ] = None
    idempotency_hours: Annotated[
        float, Meta(gt=0, le=87600, description="how long a command's message_id is remembered")
    ] = 168.0
    sim_listen: Annotated[
        str, Meta(description="host:port of the simulated account's control endpoint (/sim/inject)")
    ] = "127.0.0.1:5001"
    sim_login_delay: Annotated[
        float, Meta(ge=0, le=60, description="seconds the simulated login spends in each state")
    ] = 0.2
    sim_friends: Annotated[
        int, Meta(ge=0, le=1_000_000, description="extra generated friends in the simulated world")
    ] = 0
    sim_groups: Annotated[
        int, Meta(ge=0, le=100_000, description="extra generated groups in the simulated world")
    ] = 0
    sim_members: Annotated[
        int, Meta(ge=0, le=10_000, description="members of each generated group")
    ] = 0
    sim_load_rate: Annotated[
        float,
        Meta(
            ge=0,
            le=100_000,
            description="group messages per second the simulated account generates",
        ),
    ] = 0.0
    sim_load_seconds: Annotated[
        float, Meta(gt=0, le=604_800, description="how long the generated load lasts")
    ] = 60.0
    onebot_url: Annotated[
        str, Meta(description="forward WebSocket URL of the OneBot v11 implementation")
    ] = "ws://127.0.0.1:3001"
    onebot_token: Annotated[
        str | None,
        Meta(description="OneBot access token (sent as Authorization: Bearer; checked in reverse)"),
    ] = None
    onebot_mode: Annotated[
        Literal["forward", "reverse"],
        Meta(description="forward (the bridge connects) or reverse (the implementation connects)"),
    ] = "forward"
    onebot_listen: Annotated[
        str, Meta(description="host:port the bridge listens on for reverse WebSocket")
    ] = "127.0.0.1:8080"
    onebot_path: Annotated[str, Meta(description="path of the reverse WebSocket endpoint")] = (
        "/onebot/v11/ws"
    )
    onebot_action_timeout: Annotated[
        float,
        Meta(
            gt=0,
            le=600,
            description="seconds a OneBot action may take (a send that times out fails)",
        ),
    ] = 30.0
    onebot_risk_retcodes: Annotated[
        list[int], Meta(description="retcodes treated as risk control (风控), comma-separated")
    ] = msgspec.field(default_factory=list)
    onebot_self_id: Annotated[
        int,
        Meta(
            ge=0,
            le=99_999_999_999,
            description="QQ number served; 0: the first that logs in (others are refused)",
        ),
    ] = 0
    onebot_lookup_timeout: Annotated[
        float,
        Meta(gt=0, le=600, description="seconds an event waits for a lookup, then is published"),
    ] = 3.0
    onebot_input_status: Annotated[
        bool, Meta(description="publish NapCat input_status (a friend typing) as notify")
    ] = False
    listen: Annotated[str, Meta(description="host:port of the Openqq HTTP API (/openqq/*)")] = (
        "127.0.0.1:5000"
    )
    access_token: Annotated[
        str | None,
        Meta(description="token the HTTP API requires (access_token param or Bearer header)"),
    ] = None
    max_request_bytes: Annotated[
        int, Meta(ge=1024, le=1 << 30, description="largest HTTP request body the API accepts")
    ] = 1 << 20
    rpc_timeout: Annotated[
        float, Meta(gt=0, le=3600, description="seconds the HTTP API waits for the bridge's reply")
    ] = 30.0
    shutup_unit: Annotated[
        Literal["seconds", "minutes"],
        Meta(description="unit of shutup_group_member's time: seconds (seed doc) or minutes"),
    ] = "seconds"
    check_event_list_max_size: Annotated[
        int, Meta(ge=1, le=100_000, description="items the check_event buffer keeps")
    ] = 20
    check_event_timeout: Annotated[
        float, Meta(gt=0, le=3600, description="seconds a check_event long poll waits")
    ] = 30.0
    post_api: Annotated[
        str | None, Meta(description="URL every message and listed event is POSTed to")
    ] = None
    post_event: Annotated[bool, Meta(description="also report events (true/false)")] = True
    post_event_list: Annotated[
        list[str], Meta(description="events reported and recorded, comma-separated")
    ] = msgspec.field(default_factory=lambda: list(DEFAULT_EVENTS))
    post_stdout: Annotated[
        bool, Meta(description="print each reported item as a JSON line on stdout")
    ] = False
    post_api_retry_seconds: Annotated[
        float,
        Meta(ge=0, le=604_800, description="seconds a report waits for a receiver that is down"),
    ] = 600.0
    post_api_reject_retries: Annotated[
        int,
        Meta(ge=0, le=100, description="quick retries of a report the receiver rejects (500, 4xx)"),
    ] = 3
    post_api_timeout: Annotated[
        float, Meta(gt=0, le=3600, description="seconds one post_api request may take")
    ] = 120.0
    poll_api: Annotated[
        str | None, Meta(description="URL of the poll_api heartbeat (redirects are followed)")
    ] = None
    poll_interval: Annotated[
        float, Meta(gt=0, le=86400, description="seconds between poll_api requests")
    ] = 5.0
    onebot_server_listen: Annotated[
        str | None,
        Meta(
            description=(
                "host:port of the OneBot v11 face for bots (WebSocket /, /api, /event;"
                " HTTP /<action>); unset: off"
            )
        ),
    ] = None
    onebot_server_token: Annotated[
        str | None,
        Meta(
            description=(
                "access token bots must give the OneBot face (Bearer, Token or access_token);"
                " sent as Bearer to reverse WebSocket URLs"
            )
        ),
    ] = None
    onebot_server_secret: Annotated[
        str | None,
        Meta(description="secret of the X-Signature (HMAC-SHA1) on OneBot HTTP POST events"),
    ] = None
    onebot_server_reverse: Annotated[
        list[str],
        Meta(
            description=(
                "reverse WebSocket URLs the OneBot face connects to, comma-separated;"
                " name=URL gives the bot a durable queue, a bare URL gets live events only"
            )
        ),
    ] = msgspec.field(default_factory=list)
    onebot_server_post: Annotated[
        list[str],
        Meta(
            description=(
                "URLs the OneBot face POSTs events to, comma-separated; name=URL: durable"
                " queue, bare URL: live events only"
            )
        ),
    ] = msgspec.field(default_factory=list)
    onebot_server_queue_max: Annotated[
        int,
        Meta(
            ge=1,
            le=10_000_000,
            description="events a named bot's queue keeps while it is away (oldest dropped)",
        ),
    ] = 10_000
    onebot_server_queue_hours: Annotated[
        float,
        Meta(
            gt=0,
            le=8760,
            description="hours an event waits in a named bot's queue before it is dropped",
        ),
    ] = 24.0
    controller_listen: Annotated[
        str, Meta(description="host:port of the Controller API (openqq-bridge controller)")
    ] = "127.0.0.1:4000"
    backend_start_port: Annotated[
        int,
        Meta(
            ge=1,
            le=65535,
            description="first port of the per-account APIs the controller serves (n-th: +n)",
        ),
    ] = 5000

    def __repr__(self) -> str:
        """Like the default, with the broker password hidden."""
        fields = {f: getattr(self, f) for f in self.__struct_fields__}
        if self.amqp_url:
            fields["amqp_url"] = brokerurls.redact(self.amqp_url)
        for secret in _SECRETS:
            if fields.get(secret):
                fields[secret] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    @property
    def amqp_urls(self) -> list[str]:
        """The broker URLs of ``amqp_url``, in the order they are tried (empty when unset)."""
        return brokerurls.split(self.amqp_url) if self.amqp_url else []

    @property
    def data_dir(self) -> Path:
        """Where the client data files live (state JSON, QR code, pid file, records)."""
        return Path(self.tmpdir or tempfile.gettempdir())


def _metas(field: str) -> list[Meta]:
    """The Meta annotations of a setting, outermost type and its Optional arm."""
    hint = _HINTS[field]
    found = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Meta)]
    for arm in getattr(getattr(hint, "__origin__", None), "__args__", ()):
        found += [m for m in getattr(arm, "__metadata__", ()) if isinstance(m, Meta)]
    return found


def _descriptions() -> dict[str, str]:
    out: dict[str, str] = {}
    for field in Settings.__struct_fields__:
        texts = [m.description for m in _metas(field) if m.description]
        if not texts:
            msg = f"setting {field!r} has no description"
            raise TypeError(msg)
        out[field] = texts[-1]
    return out


_HINTS: dict[str, Any] = get_type_hints(Settings, include_extras=True)
#: One line of help per setting (its ``Meta.description``), in declaration order.
HELP: dict[str, str] = _descriptions()
#: OPENQQ_* variables that are not settings but are used next to them (compose, tests).
NOT_SETTINGS = frozenset({"OPENQQ_BROKER_PASSWORD", "OPENQQ_FAULT_DOWN_SECONDS"})
_SECRETS = frozenset(
    {"access_token", "onebot_token", "onebot_server_token", "onebot_server_secret"}
)
_URLS = frozenset(
    {"onebot_url", "post_api", "poll_api", "onebot_server_reverse", "onebot_server_post"}
)


def allowed_range(field: str) -> str | None:
    """The range of a numeric setting as text (``1..65535``, ``> 0 and <= 600``), or None."""
    lo = hi = None
    lo_open = hi_open = False
    for m in _metas(field):
        if m.ge is not None:
            lo = m.ge
        if m.gt is not None:
            lo, lo_open = m.gt, True
        if m.le is not None:
            hi = m.le
        if m.lt is not None:
            hi, hi_open = m.lt, True
    if lo is None and hi is None:
        return None
    if lo is not None and hi is not None and not lo_open and not hi_open:
        return f"{_number(lo)}..{_number(hi)}"
    parts = [f"{'>' if lo_open else '>='} {_number(lo)}"] if lo is not None else []
    parts += [f"{'<' if hi_open else '<='} {_number(hi)}"] if hi is not None else []
    return " and ".join(parts)


def _number(value: float) -> str:
    """A bound as a person writes it: ``1073741824`` and ``0.5``, never ``1.07374e+09``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _shown(field: str, value: object) -> str:
    """A value for an error message: secrets hidden, URLs without query or credentials."""
    if field in _SECRETS:
        return "***"
    if not isinstance(value, str):
        return repr(value)
    if field == "amqp_url":
        return repr(brokerurls.redact(value))
    if field in _URLS:
        scheme, sep, rest = value.partition("://")
        host = rest.split("?", 1)[0].rpartition("@")[2]
        return repr(f"{scheme}{sep}{host}")
    return repr(value)


_LISTS = frozenset(
    {
        "post_event_list",
        "onebot_risk_retcodes",
        "onebot_server_reverse",
        "onebot_server_post",
        "status_accounts",
    }
)


def env_name(field: str) -> str:
    """The environment variable of a setting."""
    return "AMQP_URL" if field == "amqp_url" else f"OPENQQ_{field.upper()}"


def _closest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _did_you_mean(suggestion: str | None) -> str:
    return f"; did you mean {suggestion}?" if suggestion else "; see openqq-bridge --help"


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``OPENQQ_*`` variable that is no setting (a typo is otherwise silent)."""
    env = os.environ if env is None else env
    known = {env_name(f) for f in HELP}
    warnings = []
    for name in sorted(env):
        if name.startswith("OPENQQ_") and name not in known and name not in NOT_SETTINGS:
            # Compared without the common prefix, which would make every name look close.
            field = _closest(name.removeprefix("OPENQQ_").lower(), HELP)
            warnings.append(
                f"environment variable {name} is not a setting and is ignored"
                + _did_you_mean(field and env_name(field))
            )
    return warnings


def bot_target(entry: str) -> tuple[str | None, str]:
    """A OneBot target entry as (bot name or None, URL): ``name=URL`` or a bare URL."""
    head, sep, rest = entry.partition("=")
    if sep and "://" not in head and valid_name(head):
        return head, rest.strip()
    return None, entry.strip()


def parse_hostport(value: str, setting: str, where: str | None = None) -> tuple[str, int]:
    """``host:port`` (``[::1]:5000`` for IPv6) -> (host, port), or ConfigError."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        origin = f" ({where})" if where else ""
        msg = f"setting {setting!r}{origin}: {value!r} is not host:port (port 0..65535)"
        raise ConfigError(msg)
    return host, int(port)


#: The TOML table of accounts the controller starts at launch (``[accounts.NAME]``).
ACCOUNTS_TABLE = "accounts"
#: Settings one account of a controller may set for itself (``[accounts.NAME]``,
#: ``start_client`` parameters); every other setting is the controller's for all accounts.
PER_ACCOUNT = frozenset(
    {
        "log_level",
        "show_message",
        "upstream",
        "onebot_url",
        "onebot_token",
        "onebot_mode",
        "onebot_listen",
        "onebot_path",
        "onebot_action_timeout",
        "onebot_risk_retcodes",
        "onebot_self_id",
        "onebot_lookup_timeout",
        "onebot_input_status",
        "sim_listen",
        "sim_login_delay",
        "sim_friends",
        "sim_groups",
        "sim_members",
        "send_interval",
        "send_interval_per_target",
        "post_api",
    }
)


def per_account_error(name: str) -> str | None:
    """Why ``name`` cannot be set for one account of a controller, or None if it can."""
    if name in PER_ACCOUNT:
        return None
    if name in HELP:
        return (
            f"setting {name!r} is the controller's, the same for every account;"
            f" per account only: {', '.join(sorted(PER_ACCOUNT))}"
        )
    return f"unknown setting {name!r}" + _did_you_mean(_closest(name, PER_ACCOUNT))


def _read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        msg = f"config file {path}: {exc.strerror or exc}"
        raise ConfigError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"config file {path}: not valid TOML: {exc}"
        raise ConfigError(msg) from exc


def load_accounts(path: str | Path | None) -> dict[str, dict[str, str]]:
    """The ``[accounts.NAME]`` tables of the TOML file: account -> per-account settings.

    Values come back as text, as environment variables carry them; ConfigError for a bad
    account name or a setting that is unknown or not per-account.
    """
    if path is None:
        return {}
    tables = _read_toml(path).get(ACCOUNTS_TABLE, {})
    if not isinstance(tables, dict):
        msg = f"config file {path}: '{ACCOUNTS_TABLE}' must be tables [accounts.NAME]"
        raise ConfigError(msg)
    out: dict[str, dict[str, str]] = {}
    for account, table in tables.items():
        where = f"config file {path}: [{ACCOUNTS_TABLE}.{account}]"
        if not valid_name(account):
            msg = f"{where}: the account name must be 1-64 letters, digits, '_' or '-'"
            raise ConfigError(msg)
        if not isinstance(table, dict):
            msg = f"{where} must be a table of settings"
            raise ConfigError(msg)
        values: dict[str, str] = {}
        for key, value in table.items():
            problem = per_account_error(key)
            if problem:
                msg = f"{where}: {problem}"
                raise ConfigError(msg)
            values[key] = as_text(value)
        out[account] = values
    return out


def as_text(value: object) -> str:
    """A setting's value as its environment variable carries it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(as_text(v) for v in value)
    return str(value)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce ``settings`` (unset ones left out)."""
    env = {}
    for field in HELP:
        value = getattr(settings, field)
        if value is not None and value != "":
            env[env_name(field)] = as_text(value)
    return env


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults < TOML file < environment. Raises ConfigError naming the setting."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if path is not None:
        for key, value in _read_toml(path).items():
            # [accounts.NAME] tables: read and checked by load_accounts (the controller).
            if key == ACCOUNTS_TABLE:
                continue
            if key not in HELP:
                hint = _did_you_mean(_closest(key, HELP))
                msg = f"config file {path}: unknown setting {key!r}{hint}"
                raise ConfigError(msg)
            if key == "amqp_url" and isinstance(value, list):
                # The nodes of a cluster as a TOML list: kept as one comma-separated value.
                if not all(isinstance(u, str) for u in value):
                    msg = f"setting 'amqp_url' (config file {path}): a list of URL strings"
                    raise ConfigError(msg)
                value = brokerurls.join(value)
            raw[key] = value
            origin[key] = f"config file {path}"
    for field in HELP:
        name = env_name(field)
        if name in env and env[name] != "":
            text = env[name]
            raw[field] = (
                [v.strip() for v in text.split(",") if v.strip()] if field in _LISTS else text
            )
            origin[field] = f"environment {name}"
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, raw, origin) from exc
    _check(settings, origin)
    return settings


def _validation_error(
    exc: msgspec.ValidationError, raw: Mapping[str, Any], origin: Mapping[str, str]
) -> ConfigError:
    """One line naming the setting, where it came from and its bad value."""
    text = str(exc)
    bad = _field_of(text)
    if bad is None:
        return ConfigError(f"settings: {text}")
    where = origin.get(bad, "default")
    detail = text.split(" - at `$.", 1)[0]
    value = raw.get(bad)
    limits = allowed_range(bad)
    # msgspec words a range failure as "Expected `int` <= 65535", without the value.
    if limits and any(op in detail for op in ("<", ">")):
        shown = value if isinstance(value, str) else _shown(bad, value)
        return ConfigError(f"setting {bad!r} ({where}): {shown} is out of range {limits}")
    return ConfigError(f"setting {bad!r} ({where}): {_shown(bad, value)}: {detail}")


def _field_of(error: str) -> str | None:
    marker = "at `$."
    if marker not in error:
        return None
    return error.split(marker, 1)[1].split("`", 1)[0].split("[", 1)[0]


def _check(s: Settings, origin: Mapping[str, str]) -> None:
    def where(field: str) -> str:
        return origin.get(field, "default")

    for field in ("account", "namespace"):
        value = getattr(s, field)
        if not valid_name(value):
            msg = (
                f"setting {field!r} ({where(field)}): {value!r} must be 1-64 letters,"
                " digits, '_' or '-' (it becomes part of routing keys)"
            )
            raise ConfigError(msg)
    for value in s.status_accounts:
        if not valid_name(value):
            msg = (
                f"setting 'status_accounts' ({where('status_accounts')}): {value!r} must be 1-64"
                " letters, digits, '_' or '-' (an account name)"
            )
            raise ConfigError(msg)
    if s.amqp_url is not None:
        _check_amqp_urls(s.amqp_url, where("amqp_url"))
    for field in ("sim_listen", "listen", "onebot_listen", "controller_listen"):
        parse_hostport(getattr(s, field), field, where(field))
    if s.metrics_listen is not None:
        parse_hostport(s.metrics_listen, "metrics_listen", where("metrics_listen"))
    if not s.onebot_url.startswith(("ws://", "wss://")):
        msg = (
            f"setting 'onebot_url' ({where('onebot_url')}): {_shown('onebot_url', s.onebot_url)}"
            " must start with ws:// or wss://"
        )
        raise ConfigError(msg)
    if not s.onebot_path.startswith("/"):
        msg = f"setting 'onebot_path' ({where('onebot_path')}): {s.onebot_path!r} must start with /"
        raise ConfigError(msg)
    for field in ("post_api", "poll_api"):
        url = getattr(s, field)
        if url is not None and not url.startswith(("http://", "https://")):
            msg = (
                f"setting {field!r} ({where(field)}): {_shown(field, url)}"
                " must be an http:// or https:// URL"
            )
            raise ConfigError(msg)
    if s.onebot_server_listen is not None:
        parse_hostport(
            s.onebot_server_listen, "onebot_server_listen", where("onebot_server_listen")
        )
    for field, schemes in (
        ("onebot_server_reverse", ("ws://", "wss://")),
        ("onebot_server_post", ("http://", "https://")),
    ):
        for entry in getattr(s, field):
            url = bot_target(entry)[1]
            if not url.startswith(schemes):
                msg = (
                    f"setting {field!r} ({where(field)}): {_shown(field, url)} must start with"
                    f" {' or '.join(schemes)} (optionally name=URL)"
                )
                raise ConfigError(msg)
    unknown = [n for n in s.post_event_list if n not in EVENT_NAMES]
    if unknown:
        msg = (
            f"setting 'post_event_list' ({where('post_event_list')}): unknown event(s)"
            f" {', '.join(unknown)}; known: {', '.join(EVENT_NAMES)}"
        )
        raise ConfigError(msg)


def cluster_advice(s: Settings) -> str | None:
    """A warning for settings that lose data on a cluster: several nodes, classic queues."""
    if len(s.amqp_urls) > 1 and s.queue_type == "classic":
        return (
            f"amqp_url lists {len(s.amqp_urls)} brokers but queue_type is classic: each"
            " command and post_api queue lives on one node, and what waits in it is lost with"
            " that node; set queue_type = 'quorum' (OPENQQ_QUEUE_TYPE=quorum) on every bridge"
            " and adapter of the namespace"
        )
    return None


def _check_amqp_urls(value: str, origin: str) -> None:
    """Each URL of ``amqp_url`` on its own: a list must never be read as one URL."""
    urls = brokerurls.split(value)
    if not urls:
        msg = f"setting 'amqp_url' ({origin}): no URL given"
        raise ConfigError(msg)
    for i, url in enumerate(urls, 1):
        problem = brokerurls.problem(url)
        if problem is not None:
            which = f"URL {i} of {len(urls)}: " if len(urls) > 1 else ""
            msg = f"setting 'amqp_url' ({origin}): {which}{problem}"
            raise ConfigError(msg)
    seen: set[str] = set()
    for url in urls:
        if url in seen:
            msg = f"setting 'amqp_url' ({origin}): {brokerurls.redact(url)!r} is listed twice"
            raise ConfigError(msg)
        seen.add(url)
